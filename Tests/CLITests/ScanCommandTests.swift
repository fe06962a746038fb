import Converters
import Foundation
import TestSupport
import XCTest

/// `clipsafety scan` as a process: exit status from the verdicts, the documented JSON schema,
/// text that fits 100 columns with file-controlled names escaped.
final class ScanCommandTests: XCTestCase {
    /// `os.system('echo pwned')`, protocol 2, by GLOBAL and REDUCE.
    static let osSystem = Data([0x80, 0x02, 0x63] + Array("os\nsystem\n".utf8) + [0x58, 10, 0, 0, 0] + Array("echo pwned".utf8) + [0x85, 0x52, 0x2E])
    static let benign = Data([0x80, 0x04, 0x4E, 0x2E])

    func testExitStatusFollowsTheVerdicts() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let safe = try dir.write(Self.benign, to: "safe.pkl")
        let evil = try dir.write(Self.osSystem, to: "evil.pkl")
        let cut = try dir.write(Data([0x80, 0x04, 0x8C, 0x02]), to: "cut.pkl")
        XCTAssertEqual(try CLI.run(["scan", safe]).status, 0)
        let unsafe = try CLI.run(["scan", safe, evil])
        XCTAssertEqual(unsafe.status, 1, unsafe.stderr)
        XCTAssertTrue(unsafe.stdout.contains("os.system"))
        XCTAssertEqual(try CLI.run(["scan", evil, cut]).status, 65)
        XCTAssertEqual(try CLI.run(["scan", dir.path]).status, 65)
        let missing = try CLI.run(["scan", dir.file("nothing.pkl")])
        XCTAssertEqual(missing.status, 66)
        XCTAssertTrue(missing.stderr.contains("nothing.pkl"))
    }

    func testJSONFollowsTheDocumentedSchema() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        _ = try dir.write(Self.benign, to: "a.pkl")
        _ = try dir.write(Self.osSystem, to: "b.pkl")
        _ = try dir.write(Data("not a model".utf8), to: "c.txt")
        var paths = [dir.path]
        if let pth = try? Fixtures.modelFile("clip_ViT-B-32_openai_binary_nsfw_head.pth") { paths.append(pth) }
        let r = try CLI.run(["scan", "--json"] + paths)
        XCTAssertEqual(r.status, 65)
        let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8))
        let schema = try JSONSchema.documented("clipsafety-scan/1", in: "docs/SCAN.md")
        XCTAssertEqual(schema.violations(of: json), [])
        let object = try XCTUnwrap(json as? [String: Any])
        let files = try XCTUnwrap(object["files"] as? [[String: Any]])
        XCTAssertEqual(files.map { $0["verdict"] as? String }.prefix(3), ["safe", "unsafe", "unreadable"])
        let finding = try XCTUnwrap((files[1]["findings"] as? [[String: Any]])?.first)
        XCTAssertEqual(finding["target"] as? String, "os.system")
        XCTAssertEqual((finding["locations"] as? [[String: Any]])?.first?["offset"] as? Int, 2)
    }

    func testDocumentedKindsAreEveryKind() throws {
        let schema = try JSONSchema.documented("clipsafety-scan/1", in: "docs/SCAN.md")
        let defs = try XCTUnwrap(schema.root["$defs"] as? [String: Any])
        let finding = try XCTUnwrap((defs["finding"] as? [String: Any])?["properties"] as? [String: Any])
        let kinds = try XCTUnwrap((finding["kind"] as? [String: Any])?["enum"] as? [String])
        XCTAssertEqual(Set(kinds), Set(ScanFinding.Kind.allCases.map(\.rawValue)))
    }

    func testTextFitsOneHundredColumnsAndEscapesNames() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let hostileName = Data([0x80, 0x02, 0x63] + Array("os\u{1b}[31m\nsystem\u{7}\n".utf8) + [0x29, 0x52, 0x2E])
        let path = try dir.write(hostileName, to: "escape.pkl")
        let r = try CLI.run(["scan", path] + ((try? Fixtures.modelFile("h14_nsfw.pth")).map { [$0] } ?? []))
        XCTAssertEqual(r.status, 1)
        XCTAssertFalse(r.stdout.contains("\u{1b}"))
        XCTAssertFalse(r.stdout.contains("\u{7}"))
        XCTAssertTrue(r.stdout.contains("os\\u{1b}[31m.system\\u{7}"), r.stdout)
        for line in r.stdout.split(separator: "\n") {
            XCTAssertLessThanOrEqual(line.count, 100, String(line))
        }
        XCTAssertTrue(r.stdout.contains(" safe, 1 unsafe, 0 unreadable\n"), r.stdout)
    }
}
