import Foundation
import XCTest
@testable import Runtime

final class SafetensorsTests: XCTestCase {
    /// A file from a literal header and data area.
    func file(_ header: String, _ data: [UInt8] = []) -> Data {
        var d = Data()
        withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { d.append(contentsOf: $0) }
        d.append(contentsOf: Array(header.utf8))
        d.append(contentsOf: data)
        return d
    }

    func assertRefused(_ bytes: Data, _ kind: ClipSafetyError.Kind, containing text: String, line: UInt = #line) {
        XCTAssertThrowsError(try SafetensorsFile(bytes: bytes), line: line) { error in
            guard let e = error as? ClipSafetyError else { return XCTFail("not a ClipSafetyError: \(error)", line: line) }
            XCTAssertEqual(e.kind, kind, e.message, line: line)
            XCTAssertTrue(e.message.contains(text), "'\(e.message)' lacks '\(text)'", line: line)
        }
    }

    func testRoundTripIsByteIdentical() throws {
        let original = SafetensorsFile(
            metadata: ["format": "x", "note": "a/b"],
            tensors: [
                Tensor(name: "b", shape: [2], floats: [1, 2]),
                Tensor(name: "a", shape: [1, 3], int64s: [7, 8, 9]),
                Tensor(name: "k", shape: [3], bytes: [1, 2, 3]),
                try Tensor(name: "h", dtype: .f16, shape: [2], data: Data([0, 0x3c, 0, 0x40])),
            ])
        let bytes = try original.serialized()
        let headerLength = Int(bytes.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        XCTAssertEqual(headerLength % 8, 0, "header is padded to a multiple of 8")
        let read = try SafetensorsFile(bytes: bytes)
        XCTAssertEqual(read.metadata, original.metadata)
        XCTAssertEqual(read.tensors.map(\.name), ["a", "b", "h", "k"], "file order: 8-byte, 4-byte, 2-byte, 1-byte elements")
        XCTAssertEqual(try read.tensor(named: "b")!.floatValues(), [1, 2])
        XCTAssertEqual(try read.tensor(named: "a")!.int64Values(), [7, 8, 9])
        XCTAssertEqual(try read.tensor(named: "h")!.floatValues(), [1, 2])
        XCTAssertEqual(try read.serialized(), bytes)
        XCTAssertFalse(String(decoding: bytes, as: UTF8.self).contains("\\/"), "slashes are not escaped")
    }

    func testAcceptsEmptyFileWithOnlyMetadata() throws {
        let f = try SafetensorsFile(bytes: file(#"{"__metadata__":{"k":"v"}}"#))
        XCTAssertEqual(f.metadata, ["k": "v"])
        XCTAssertTrue(f.tensors.isEmpty)
    }

    func testRejectsFileShorterThanHeaderLength() {
        assertRefused(Data([1, 2, 3]), .truncated, containing: "8-byte")
    }

    func testRejectsHeaderLongerThanLimit() {
        var d = Data()
        withUnsafeBytes(of: UInt64(200_000_000).littleEndian) { d.append(contentsOf: $0) }
        assertRefused(d, .limitExceeded, containing: "exceeds the limit")
    }

    func testRejectsHugeHeaderLengthWithoutAllocating() {
        var d = Data()
        withUnsafeBytes(of: UInt64.max.littleEndian) { d.append(contentsOf: $0) }
        assertRefused(d, .limitExceeded, containing: "header length")
    }

    func testRejectsHeaderPastEndOfFile() {
        var d = file("{}")
        d.replaceSubrange(0..<8, with: [50, 0, 0, 0, 0, 0, 0, 0])
        assertRefused(d, .truncated, containing: "past the end")
    }

    func testRejectsHeaderNotStartingWithBrace() {
        assertRefused(file(" {}"), .malformed, containing: "'{'")
    }

    func testRejectsInvalidJSON() {
        assertRefused(file("{\"a\":"), .malformed, containing: "JSON")
    }

    func testRejectsNonStringMetadata() {
        assertRefused(file(#"{"__metadata__":{"k":1}}"#), .malformed, containing: "not a string")
    }

    func testRejectsUnknownDtype() {
        assertRefused(file(#"{"t":{"dtype":"F8","shape":[1],"data_offsets":[0,1]}}"#, [0]), .unsupported, containing: "F8")
    }

    func testRejectsNegativeShape() {
        assertRefused(file(#"{"t":{"dtype":"U8","shape":[-1],"data_offsets":[0,1]}}"#, [0]), .malformed, containing: "shape")
    }

    func testRejectsBooleanInShape() {
        assertRefused(file(#"{"t":{"dtype":"U8","shape":[true],"data_offsets":[0,1]}}"#, [0]), .malformed, containing: "shape")
    }

    func testRejectsReversedOffsets() {
        assertRefused(file(#"{"t":{"dtype":"U8","shape":[0],"data_offsets":[1,0]}}"#, [0]), .malformed, containing: "data_offsets")
    }

    func testRejectsSizeThatDisagreesWithShape() {
        assertRefused(file(#"{"t":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#, [0, 0, 0, 0]), .malformed, containing: "needs 8 bytes")
    }

    func testRejectsShapeThatOverflows() {
        assertRefused(file(#"{"t":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,8]}}"#, [UInt8](repeating: 0, count: 8)), .malformed, containing: "overflows")
    }

    func testRejectsOverlappingTensors() {
        assertRefused(file(#"{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[2],"data_offsets":[1,3]}}"#, [0, 0, 0]), .malformed, containing: "overlaps")
    }

    func testRejectsHoleBetweenTensors() {
        assertRefused(file(#"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"b":{"dtype":"U8","shape":[1],"data_offsets":[2,3]}}"#, [0, 0, 0]), .malformed, containing: "hole")
    }

    func testRejectsTensorPastEndOfData() {
        assertRefused(file(#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}"#, [0, 0]), .truncated, containing: "past the data")
    }

    func testRejectsBytesAfterLastTensor() {
        assertRefused(file(#"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}"#, [0, 0]), .malformed, containing: "after the last tensor")
    }

    func testEveryPrefixOfAValidFileIsRefusedWithoutTrapping() throws {
        let bytes = try HandBuiltModels.binary().serialized()
        for n in 0..<bytes.count {
            XCTAssertThrowsError(try SafetensorsFile(bytes: bytes.prefix(n)))
        }
    }
}
