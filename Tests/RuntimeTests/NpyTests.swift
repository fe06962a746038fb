import Foundation
import XCTest
@testable import Runtime

final class NpyTests: XCTestCase {
    /// A `.npy` file with a literal header dictionary and raw data.
    func npy(_ dict: String, _ data: [UInt8], version: UInt8 = 1) -> Data {
        var header = dict
        let prefix = version == 1 ? 10 : 12
        header += String(repeating: " ", count: (64 - (prefix + header.utf8.count + 1) % 64) % 64) + "\n"
        var d = Data([0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, version, 0])
        if version == 1 {
            withUnsafeBytes(of: UInt16(header.utf8.count).littleEndian) { d.append(contentsOf: $0) }
        } else {
            withUnsafeBytes(of: UInt32(header.utf8.count).littleEndian) { d.append(contentsOf: $0) }
        }
        d.append(contentsOf: Array(header.utf8))
        d.append(contentsOf: data)
        return d
    }

    func bytes<T>(_ values: [T]) -> [UInt8] { values.withUnsafeBytes { Array($0) } }

    func testReadsEveryDtype() throws {
        let f2 = try NpyArray(bytes: npy("{'descr': '<f2', 'fortran_order': False, 'shape': (2,), }", bytes([Float16(1.5), Float16(-2)])))
        XCTAssertEqual(f2.floatValues(), [1.5, -2])
        let f4 = try NpyArray(bytes: npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2), }", bytes([Float(0.25), 3])))
        XCTAssertEqual(f4.floatValues(), [0.25, 3])
        let f8 = try NpyArray(bytes: npy("{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }", bytes([Double(0.1)])))
        XCTAssertEqual(f8.floatValues(), [Float(0.1)])
        let i8 = try NpyArray(bytes: npy("{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }", bytes([Int64(-1), 0, 1 << 40])))
        XCTAssertEqual(i8.int64Values(), [-1, 0, 1 << 40])
        let u1 = try NpyArray(bytes: npy("{'descr': '|u1', 'fortran_order': False, 'shape': (2,), }", [7, 255]))
        XCTAssertEqual(u1.int64Values(), [7, 255])
        let b1 = try NpyArray(bytes: npy("{'descr': '|b1', 'fortran_order': False, 'shape': (2,), }", [1, 0]))
        XCTAssertEqual(b1.int64Values(), [1, 0])
    }

    func testConvertsBigEndianAndFortranOrder() throws {
        let be = try NpyArray(bytes: npy("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", bytes([Float(1.5).bitPattern.bigEndian, Float(-3).bitPattern.bigEndian])))
        XCTAssertEqual(be.floatValues(), [1.5, -3])
        // Fortran order: columns stored first. [[1, 2, 3], [4, 5, 6]] is stored 1 4 2 5 3 6.
        let f = try NpyArray(bytes: npy("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", bytes([Float(1), 4, 2, 5, 3, 6])))
        XCTAssertEqual(f.floatValues(), [1, 2, 3, 4, 5, 6])
        let bigFortran = try NpyArray(bytes: npy("{'descr': '>i8', 'fortran_order': True, 'shape': (2, 2), }", bytes([Int64(1).bigEndian, Int64(3).bigEndian, Int64(2).bigEndian, Int64(4).bigEndian])))
        XCTAssertEqual(bigFortran.int64Values(), [1, 2, 3, 4])
    }

    func testReadsVersions2And3() throws {
        let v2 = try NpyArray(bytes: npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", bytes([Float(2)]), version: 2))
        XCTAssertEqual(v2.floatValues(), [2])
        let v3 = try NpyArray(bytes: npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", bytes([Float(3)]), version: 3))
        XCTAssertEqual(v3.floatValues(), [3])
    }

    func testWriteReadRoundTripForEveryDtype() throws {
        let arrays = [
            NpyArray(shape: [2, 2], floats: [1, 2, 3, 4]),
            NpyArray(shape: [3], doubles: [0.1, 0.2, 0.3]),
            NpyArray(shape: [1, 2], int64s: [5, -6]),
            try NpyArray(dtype: .f2, shape: [2], data: Data(bytes([Float16(0.5), Float16(1)]))),
            try NpyArray(dtype: .u1, shape: [2], data: Data([1, 2])),
            try NpyArray(dtype: .b1, shape: [2], data: Data([1, 0])),
            try NpyArray(dtype: .f4, shape: [0, 512], data: Data()),
        ]
        for a in arrays {
            let bytes = a.serialized()
            XCTAssertEqual((bytes.count - a.data.count) % 64, 0, "data starts at a multiple of 64")
            let back = try NpyArray(bytes: bytes)
            XCTAssertEqual(back.dtype, a.dtype)
            XCTAssertEqual(back.shape, a.shape)
            XCTAssertEqual(back.data, a.data)
            XCTAssertEqual(back.serialized(), bytes)
        }
    }

    func assertRefused(_ bytes: Data, _ kind: ClipSafetyError.Kind, containing text: String, line: UInt = #line) {
        XCTAssertThrowsError(try NpyArray(bytes: bytes), line: line) { error in
            guard let e = error as? ClipSafetyError else { return XCTFail("\(error)", line: line) }
            XCTAssertEqual(e.kind, kind, e.message, line: line)
            XCTAssertTrue(e.message.contains(text), "'\(e.message)' lacks '\(text)'", line: line)
        }
    }

    func testRefusesObjectDtypeAsPickle() {
        assertRefused(npy("{'descr': '|O', 'fortran_order': False, 'shape': (1,), }", [0x80, 2, 0x2e]), .unsafe, containing: "pickle")
    }

    func testRefusesUnsupportedDtype() {
        assertRefused(npy("{'descr': '<c16', 'fortran_order': False, 'shape': (1,), }", [UInt8](repeating: 0, count: 16)), .unsupported, containing: "<c16")
    }

    func testRefusesHeaderThatLiesAboutShape() {
        assertRefused(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1000000, 768), }", [0, 0, 0, 0]), .truncated, containing: "needs")
    }

    func testRefusesOverflowingShape() {
        assertRefused(npy("{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", []), .malformed, containing: "overflows")
    }

    func testRefusesTrailingBytes() {
        assertRefused(npy("{'descr': '|u1', 'fortran_order': False, 'shape': (1,), }", [1, 2]), .malformed, containing: "after the data")
    }

    func testRefusesBadMagicAndUnknownVersion() {
        assertRefused(Data("NUMPY".utf8), .malformed, containing: "magic")
        assertRefused(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", [0, 0, 0, 0], version: 9), .unsupported, containing: "version 9")
    }

    func testRefusesStructuredDtype() {
        assertRefused(npy("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }", [0, 0, 0, 0]), .unsupported, containing: "structured")
    }

    func testEveryPrefixIsRefusedWithoutTrapping() {
        let good = NpyArray(shape: [2, 3], floats: [1, 2, 3, 4, 5, 6]).serialized()
        for n in 0..<good.count { XCTAssertThrowsError(try NpyArray(bytes: good.prefix(n))) }
    }

    func testWithRowsGivesABatchOfTheRequestedRows() throws {
        let a = NpyArray(shape: [3, 2], floats: [1, 2, 3, 4, 5, 6])
        let values = try a.withRows(1, 2) { batch in (0..<2).flatMap { r in (0..<2).map { batch.value(row: r, column: $0) } } }
        XCTAssertEqual(values, [3, 4, 5, 6])
        XCTAssertThrowsError(try NpyArray(shape: [6], floats: [1, 2, 3, 4, 5, 6]).withRows(0, 1) { _ in 0 })
    }
}

final class NpyMappedTests: XCTestCase {
    func testReleasedRowsStayReadableFromTheFile() throws {
        let path = NSTemporaryDirectory() + "clipsafety-mapped-\(UUID().uuidString).npy"
        defer { unlink(path) }
        let values = (0..<(4096 * 4)).map { Float($0) }
        try NpyArray(shape: [4096, 4], floats: values).serialized().write(to: URL(fileURLWithPath: path))
        let a = try NpyArray(contentsOf: path)
        XCTAssertTrue(a.isFileMapped)
        a.releaseRows(before: 4096)
        XCTAssertEqual(a.floatValues(), values)
        XCTAssertFalse(NpyArray(shape: [1], floats: [1]).isFileMapped, "in-memory arrays are never released")
    }
}
