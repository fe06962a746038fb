import Foundation
import XCTest
import Converters
import Runtime
import TestSupport

/// `clipsafety diff` as a user runs it: exit codes, the text at 100 columns, the JSON schema,
/// and one error line naming a file that cannot be read.
final class DiffCommandTests: XCTestCase {
    var dir: TemporaryDirectory!

    override func setUpWithError() throws { dir = try TemporaryDirectory() }
    override func tearDown() { dir.remove() }

    static let inspectFolder = Fixtures.repoRoot + "/Tests/Fixtures/inspect/"

    func json(_ run: CLIRun) throws -> [String: Any] {
        try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any], run.stdout + run.stderr)
    }

    func safetensors(_ name: String, _ values: [Float]) throws -> String {
        let tensors = [Tensor(name: "layer.weight", shape: [2, values.count / 2], floats: values), Tensor(name: "layer.bias", shape: [1], floats: [0.5])]
        return try dir.write(try SafetensorsFile(metadata: [:], tensors: tensors).serialized(), to: name)
    }

    func assertFitsOneHundredColumns(_ text: String, file: StaticString = #filePath, line: UInt = #line) {
        for l in text.split(separator: "\n") where l.count > 100 {
            XCTFail("line of \(l.count) columns: \(l)", file: file, line: line)
        }
    }

    func testTheTorchCNNZipAndItsLegacyTwinAreIdentical() throws {
        let run = try CLI.run(["diff", Self.inspectFolder + "torch_cnn.pth", Self.inspectFolder + "torch_cnn_legacy.pth"])
        XCTAssertEqual(run.status, 0, run.stdout + run.stderr)
        XCTAssertTrue(run.stdout.contains("9 matched, 9 identical, 0 only in A, 0 only in B"), run.stdout)
        XCTAssertTrue(run.stdout.hasSuffix("identical (exit 0)\n"), run.stdout)
        XCTAssertEqual(run.stderr, "")
        let j = try json(try CLI.run(["diff", "--json", Self.inspectFolder + "torch_cnn.pth", Self.inspectFolder + "torch_cnn_legacy.pth"]))
        XCTAssertEqual(try JSONSchema.documented("clipsafety-diff/1").violations(of: j), [])
        XCTAssertEqual(j["identical"] as? Bool, true)
    }

    func testValuesThatDifferExit1UnlessWithinAtol() throws {
        let a = try safetensors("a.safetensors", [0, 1, 2, 3, 4, 5])
        let b = try safetensors("b.safetensors", [0, 1, 2, 3, 4.25, 5])
        let run = try CLI.run(["diff", a, b])
        XCTAssertEqual(run.status, 1, run.stderr)
        XCTAssertTrue(run.stdout.contains("Values beyond tolerance (1)"), run.stdout)
        XCTAssertTrue(run.stdout.contains("[1, 1]"), run.stdout)
        XCTAssertTrue(run.stdout.hasSuffix("the files differ (exit 1)\n"), run.stdout)
        assertFitsOneHundredColumns(run.stdout)
        let j = try json(try CLI.run(["diff", a, b, "--json"]))
        XCTAssertEqual(try JSONSchema.documented("clipsafety-diff/1").violations(of: j), [])
        let pair = try XCTUnwrap((j["tensors"] as? [[String: Any]])?.first { $0["name"] as? String == "layer.weight" })
        XCTAssertEqual(pair["max_abs_diff"] as? Double, 0.25)
        XCTAssertEqual(pair["worst_index"] as? [Int], [1, 1])
        XCTAssertEqual(pair["beyond_atol"] as? Int, 1)
        let within = try CLI.run(["diff", a, b, "--atol", "0.25"])
        XCTAssertEqual(within.status, 0, within.stdout)
        XCTAssertTrue(within.stdout.contains("identical within --atol 0.25 (exit 0)"), within.stdout)
    }

    func testANativeFileAndItsONNXExportFromConvertAreIdentical() throws {
        let source = try Fixtures.modelFile("clip_ViT-L-14_openai_binary_nsfw_head.pth")
        let native = dir.file("l14.safetensors"), onnx = dir.file("l14.onnx")
        XCTAssertEqual(try CLI.run(["convert", source, "-o", native]).status, 0)
        XCTAssertEqual(try CLI.run(["convert", native, "-o", onnx]).status, 0)
        let run = try CLI.run(["diff", native, onnx])
        XCTAssertEqual(run.status, 0, run.stdout + run.stderr)
        XCTAssertTrue(run.stdout.contains("exporter: A exported to ONNX in memory"), run.stdout)
        let source2 = try CLI.run(["diff", source, native, "--json"])
        XCTAssertEqual(source2.status, 0, source2.stdout)
        XCTAssertEqual((try json(source2)["matching"] as? [String: Any])?["method"] as? String, "converter")
    }

    func testTwoKerasModelsListTheirLayersWithinOneHundredColumns() throws {
        let run = try CLI.run(["diff", Self.inspectFolder + "keras_conv.h5", Self.inspectFolder + "keras_lstm.keras"])
        XCTAssertEqual(run.status, 1, run.stderr)
        XCTAssertTrue(run.stdout.contains("- conv2d (Conv2D)"), run.stdout)
        XCTAssertTrue(run.stdout.contains("+ lstm (LSTM)"), run.stdout)
        assertFitsOneHundredColumns(run.stdout)
    }

    func testAFileThatFailsToReadGivesOneLineNamingItAndExit65() throws {
        let good = try safetensors("good.safetensors", [1, 2])
        let truncated = try dir.write(Data([0xFF, 0, 0, 0, 0, 0, 0, 0, 0x7B, 0x7D]), to: "truncated.safetensors")
        let hostile = Fixtures.repoRoot + "/Tests/Fixtures/hostile/hdf5-header-declaring-4gib.h5"
        for (a, b, bad) in [(good, truncated, truncated), (hostile, good, hostile)] {
            let run = try CLI.run(["diff", a, b])
            XCTAssertEqual(run.status, 65, run.stdout + run.stderr)
            XCTAssertEqual(run.stdout, "")
            let lines = run.stderr.split(separator: "\n")
            XCTAssertEqual(lines.count, 1, run.stderr)
            XCTAssertTrue(lines.first?.hasPrefix("clipsafety: \(bad): ") == true, run.stderr)
        }
    }

    func testMissingFilesAndBadOptions() throws {
        let good = try safetensors("good.safetensors", [1, 2])
        let missing = try CLI.run(["diff", good, dir.file("absent.safetensors")])
        XCTAssertEqual(missing.status, 66)
        XCTAssertTrue(missing.stderr.contains("absent.safetensors"), missing.stderr)
        XCTAssertEqual(try CLI.run(["diff", good, good, "--atol", "-1"]).status, 64)
        XCTAssertEqual(try CLI.run(["diff", good, good, "--atol", "nan"]).status, 64)
        XCTAssertEqual(try CLI.run(["diff", good]).status, 64)
    }
}
