import Foundation
import XCTest
@testable import Converters
import Runtime
import TestSupport

final class NpzTests: XCTestCase {
    func testWriteReadRoundTrip() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let arrays: [String: NpyArray] = [
            "inputs": NpyArray(shape: [2, 3], doubles: [1, 2, 3, 4, 5, 6]),
            "outputs": NpyArray(shape: [2, 1], floats: [0.5, 0.25]),
            "labels": NpyArray(shape: [2], int64s: [0, 1]),
        ]
        try NpzArchive.write(arrays, to: dir.file("r.npz"))
        let back = try NpzArchive.read(contentsOf: dir.file("r.npz"))
        XCTAssertEqual(Set(back.keys), ["inputs", "outputs", "labels"])
        for (k, a) in arrays {
            XCTAssertEqual(back[k]?.shape, a.shape)
            XCTAssertEqual(back[k]?.data, a.data)
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["r.npz"], "no temporary file left")
    }

    func testReadsNumpyWrittenReference() throws {
        let arrays = try NpzArchive.read(contentsOf: Fixtures.reference("violence_detection_vit_b_32.npz"))
        XCTAssertEqual(arrays["inputs"]?.shape, [64, 512])
        XCTAssertEqual(arrays["inputs"]?.dtype, .f4)
        XCTAssertEqual(arrays["outputs"]?.shape, [64, 2])
        XCTAssertEqual(arrays["labels"]?.dtype, .i8)
        let savedModel = try NpzArchive.read(contentsOf: Fixtures.reference("clip_autokeras_nsfw_b32.npz"))
        XCTAssertEqual(savedModel["inputs"]?.dtype, .f8, "SavedModel references keep float64 inputs")
    }

    func testMemberErrorNamesTheMember() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        try ZipArchive.write(members: [(name: "bad.npy", data: Data("not npy".utf8))], to: dir.file("b.npz"))
        XCTAssertThrowsError(try NpzArchive.read(contentsOf: dir.file("b.npz"))) { error in
            XCTAssertTrue((error as? ClipSafetyError)?.message.contains("bad.npy") ?? false, "\(error)")
        }
    }
}

final class ZipArchiveTests: XCTestCase {
    func zipBytes(_ members: [(String, Data)]) throws -> Data {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        try ZipArchive.write(members: members.map { (name: $0.0, data: $0.1) }, to: dir.file("z.zip"))
        return try Data(contentsOf: URL(fileURLWithPath: dir.file("z.zip")))
    }

    func testReadsMembersInMemory() throws {
        let zip = try ZipArchive(bytes: try zipBytes([("a/b.txt", Data("hello".utf8)), ("c", Data())]))
        XCTAssertEqual(zip.entries.map(\.name), ["a/b.txt", "c"])
        XCTAssertEqual(try zip.read(named: "a/b.txt"), Data("hello".utf8))
        XCTAssertEqual(try zip.read(named: "c"), Data())
        XCTAssertNil(try zip.read(named: "missing"))
    }

    func assertRefused(_ bytes: Data, limits: ReaderLimits = .init(), _ kind: ClipSafetyError.Kind, containing text: String, line: UInt = #line) {
        XCTAssertThrowsError(try { let z = try ZipArchive(bytes: bytes, limits: limits); for e in z.entries { _ = try z.read(e) } }(), line: line) { error in
            guard let e = error as? ClipSafetyError else { return XCTFail("\(error)", line: line) }
            XCTAssertEqual(e.kind, kind, e.message, line: line)
            XCTAssertTrue(e.message.contains(text), "'\(e.message)' lacks '\(text)'", line: line)
        }
    }

    func testRefusesDotDotEntry() throws {
        assertRefused(try zipBytes([("x/../../etc/passwd", Data("x".utf8))]), .unsafe, containing: "'..'")
    }

    func testRefusesAbsoluteEntry() throws {
        assertRefused(try zipBytes([("/etc/passwd", Data("x".utf8))]), .unsafe, containing: "absolute")
    }

    func testCapsUncompressedBytes() throws {
        var limits = ReaderLimits()
        limits.maxUncompressedBytes = 10
        assertRefused(try zipBytes([("big", Data(count: 11))]), limits: limits, .limitExceeded, containing: "limit")
        assertRefused(try zipBytes([("a", Data(count: 6)), ("b", Data(count: 6))]), limits: limits, .limitExceeded, containing: "limit")
    }

    func testRefusesGarbageAndTruncation() throws {
        assertRefused(Data("PK\u{3}\u{4}garbage".utf8), .truncated, containing: "too short")
        assertRefused(Data("PK\u{3}\u{4}".utf8) + Data(repeating: 0x41, count: 40), .malformed, containing: "zip")
        let good = try zipBytes([("a", Data("hello".utf8))])
        for n in stride(from: 0, to: good.count, by: 7) {
            XCTAssertThrowsError(try { let z = try ZipArchive(bytes: good.prefix(n)); for e in z.entries { _ = try z.read(e) } }())
        }
    }
}
