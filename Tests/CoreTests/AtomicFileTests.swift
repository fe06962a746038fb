import Foundation
import XCTest
import Core

final class AtomicFileTests: XCTestCase {
    var folder: String!

    override func setUpWithError() throws {
        folder = NSTemporaryDirectory() + "atomic-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: folder) }

    func names() throws -> Set<String> { Set(try FileManager.default.contentsOfDirectory(atPath: folder)) }

    func testCommitReplacesTheTargetWhole() throws {
        let path = folder + "/out.bin"
        try Data("old".utf8).write(to: URL(fileURLWithPath: path))
        let file = try AtomicFile(path: path)
        try file.write(Data("new ".utf8))
        XCTAssertEqual(try String(contentsOfFile: path, encoding: .utf8), "old", "the target is untouched until commit")
        try file.write(Data("bytes".utf8))
        try file.commit()
        XCTAssertEqual(try String(contentsOfFile: path, encoding: .utf8), "new bytes")
        XCTAssertEqual(try names(), ["out.bin"])
    }

    func testAFailedBodyLeavesTheTargetAndNoTemporary() throws {
        let path = folder + "/out.bin"
        try Data("old".utf8).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try AtomicFile.write(to: path) { handle in
            try handle.write(contentsOf: Data("partial".utf8))
            throw ClipSafetyError.mismatch("stop")
        })
        XCTAssertEqual(try String(contentsOfFile: path, encoding: .utf8), "old")
        XCTAssertEqual(try names(), ["out.bin"])
    }

    func testDroppingAnUncommittedFileRemovesItsTemporary() throws {
        do {
            let file = try AtomicFile(path: folder + "/never.bin")
            try file.write(Data([1, 2, 3]))
            XCTAssertTrue(FileManager.default.fileExists(atPath: file.temporaryPath))
        }
        XCTAssertEqual(try names(), [])
    }

    func testTheTemporaryIsCreatedExclusivelyBesideTheTarget() throws {
        let file = try AtomicFile(path: folder + "/x.npy")
        XCTAssertEqual((file.temporaryPath as NSString).deletingLastPathComponent, folder)
        XCTAssertTrue((file.temporaryPath as NSString).lastPathComponent.hasPrefix(".x.npy.tmp-"))
        file.discard()
    }

    func testAMissingFolderIsACannotCreateError() {
        XCTAssertThrowsError(try AtomicFile(path: folder + "/missing/x.npy")) {
            XCTAssertEqual(($0 as? ClipSafetyError)?.exitCode, .cannotCreate)
        }
    }

    func testCommitIfAbsentNeverReplaces() throws {
        let path = folder + "/columns.json"
        let first = try AtomicFile(path: path)
        try first.write(Data("first".utf8))
        XCTAssertTrue(try first.commitIfAbsent())
        let second = try AtomicFile(path: path)
        try second.write(Data("second".utf8))
        XCTAssertFalse(try second.commitIfAbsent())
        XCTAssertEqual(try String(contentsOfFile: path, encoding: .utf8), "first")
        XCTAssertEqual(try names(), ["columns.json"])
    }
}

final class ExitStatusTests: XCTestCase {
    func testEveryErrorKindMapsToADocumentedCode() {
        let kinds: [ClipSafetyError.Kind] = [.malformed, .truncated, .unsupported, .unsafe, .limitExceeded, .mismatch,
                                             .io, .missingFile, .usage, .cannotCreate]
        let codes = Set(kinds.map(\.exitCode))
        XCTAssertEqual(codes, [.dataError, .ioError, .noInput, .usage, .cannotCreate])
    }

    func testAFileErrorNamesTheFileAndKeepsItsCode() {
        let (message, code) = ExitStatus.describe(FileError(path: "a.pth", underlying: .unsafe("global os.system")))
        XCTAssertEqual(message, "a.pth: global os.system")
        XCTAssertEqual(code, .dataError)
        XCTAssertEqual(ExitStatus.describe(NSError(domain: "x", code: 1)).code, .internalError)
    }

    func testTheReadmeTableListsEveryExitCode() throws {
        let readme = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("README.md")
        let text = try String(contentsOf: readme, encoding: .utf8)
        guard let start = text.range(of: "### Exit codes") else { return XCTFail("README has no exit-code table") }
        let rows = text[start.upperBound...].split(separator: "\n").drop { !$0.hasPrefix("|") }.prefix { $0.hasPrefix("|") }
        let listed = Set(rows.flatMap { row in
            row.split(separator: "|").first.map { $0.split(separator: ",").compactMap { Int32($0.trimmingCharacters(in: .whitespaces)) } } ?? []
        })
        XCTAssertEqual(listed, Set(ExitStatus.allCases.map(\.rawValue)))
    }
}
