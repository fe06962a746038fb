import Converters
import Foundation
import Runtime
import TestSupport
import XCTest

/// `inspect`, `convert` and `scan` given a SavedModel folder, and `convert` of a SavedModel
/// without Keras metadata, through the built binary (exit codes and messages).
final class SavedModelFolderCommandTests: XCTestCase {
    var dir: TemporaryDirectory!
    override func setUpWithError() throws { dir = try TemporaryDirectory() }
    override func tearDown() { dir.remove() }

    static let keras3 = Fixtures.repoRoot + "/Tests/Fixtures/inspect/keras3_export.zip"

    /// Extracts a zip into `name/`; returns the folder holding `saved_model.pb`.
    func unzip(_ zipPath: String, as name: String) throws -> String {
        let zip = try ZipArchive(bytes: try Data(contentsOf: URL(fileURLWithPath: zipPath)))
        var root: String?
        for entry in zip.entries where !entry.name.hasSuffix("/") {
            let path = dir.file(name + "/" + entry.name)
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try zip.read(entry).write(to: URL(fileURLWithPath: path))
            if entry.name.hasSuffix("saved_model.pb") { root = (path as NSString).deletingLastPathComponent }
        }
        return try XCTUnwrap(root)
    }

    func testConvertInspectAndScanAFolder() throws {
        let folder = try unzip(try Fixtures.modelFile("clip_autokeras_nsfw_b32.zip"), as: "b32")
        let out = dir.file("b32.safetensors")
        let convert = try CLI.run(["convert", folder, "-o", out])
        XCTAssertEqual(convert.status, 0, convert.stderr)
        XCTAssertTrue(convert.stdout.contains("(savedmodel-folder → "), convert.stdout)
        let native = try NativeModel(bytes: try Data(contentsOf: URL(fileURLWithPath: out)))
        XCTAssertEqual(native.source.sourceFormat, "savedmodel-folder")

        let inspect = try CLI.run(["inspect", folder])
        XCTAssertEqual(inspect.status, 0, inspect.stderr)
        XCTAssertTrue(inspect.stdout.contains("format    savedmodel-folder: TensorFlow SavedModel folder, converted in memory"), inspect.stdout)
        XCTAssertTrue(inspect.stdout.contains("Graph ops (11,472 nodes"), inspect.stdout)

        let scan = try CLI.run(["scan", folder, "--json"])
        XCTAssertEqual(scan.status, 0, scan.stderr)
        let files = (try JSONSerialization.jsonObject(with: Data(scan.stdout.utf8)) as? [String: Any])?["files"] as? [[String: Any]]
        XCTAssertEqual(files?.count, 1, "one SavedModel, not its loose files")
        XCTAssertEqual(files?.first?["format"] as? String, "savedmodel-folder")
    }

    func testConvertOfAKeras3ExportExits65SayingWhy() throws {
        for input in [Self.keras3, try unzip(Self.keras3, as: "k3")] {
            let run = try CLI.run(["convert", input, "-o", dir.file("k3.safetensors")])
            XCTAssertEqual(run.status, 65, run.stderr)
            XCTAssertTrue(run.stderr.contains("a SavedModel without keras_metadata.pb"), run.stderr)
            XCTAssertTrue(run.stderr.contains("its signatures: serving_default (keras_tensor_10: float32 (N, 6) → output_0: float32 (N, 1)); serve ("), run.stderr)
            XCTAssertFalse(FileManager.default.fileExists(atPath: dir.file("k3.safetensors")))
        }
        let inspect = try CLI.run(["inspect", Self.keras3])
        XCTAssertEqual(inspect.status, 0, inspect.stderr)
    }

    func testAFolderWithALinkOutsideExits65() throws {
        let folder = try unzip(try Fixtures.modelFile("clip_autokeras_nsfw_b32.zip"), as: "b32")
        let shard = folder + "/variables/variables.data-00000-of-00001"
        let outside = dir.file("stolen.data")
        try FileManager.default.moveItem(atPath: shard, toPath: outside)
        try FileManager.default.createSymbolicLink(atPath: shard, withDestinationPath: outside)
        for command in [["convert", folder, "-o", dir.file("x.safetensors")], ["inspect", folder]] {
            let run = try CLI.run(command)
            XCTAssertEqual(run.status, 65, "\(command[0]): \(run.stderr)")
            XCTAssertTrue(run.stderr.contains("\(folder): SavedModel folder: 'variables/variables.data-00000-of-00001' is a symbolic link"), run.stderr)
        }
        let scan = try CLI.run(["scan", folder])
        XCTAssertEqual(scan.status, 1, "scan reports the link outside as unsafe: \(scan.stdout)")
    }

    func testLimitFlagsReachTheFolderReader() throws {
        let folder = try unzip(Self.keras3, as: "k3")
        let bySize = try CLI.run(["inspect", folder, "--max-file-bytes", "20000"])
        XCTAssertEqual(bySize.status, 65, bySize.stderr)
        XCTAssertTrue(bySize.stderr.contains("SavedModel folder: saved_model.pb: file of 33315 bytes exceeds the limit of 20000"), bySize.stderr)
        let byTotal = try CLI.run(["convert", folder, "-o", dir.file("x.safetensors"), "--max-uncompressed-bytes", "34000"])
        XCTAssertEqual(byTotal.status, 65, byTotal.stderr)
        XCTAssertTrue(byTotal.stderr.contains("more than 34000 bytes (raise with --max-uncompressed-bytes)"), byTotal.stderr)
    }
}
