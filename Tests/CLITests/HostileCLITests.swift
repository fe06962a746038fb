import Foundation
import XCTest
import TestSupport
import Runtime
import Converters

/// The README's error contract, end to end, for hostile model files: exit 65 (66 for a missing
/// file), exactly one stderr line `clipsafety: <path>: <what>`, nothing on stdout, and nothing
/// created in the output folder — neither the output nor a temporary file.
final class HostileCLITests: XCTestCase {
    var dir: TemporaryDirectory!
    /// Inputs live here; outputs go to a separate folder whose listing must stay empty.
    var inputs: String!
    var outputs: String!
    var marker: String!

    override func setUpWithError() throws {
        dir = try TemporaryDirectory()
        inputs = dir.file("in")
        outputs = dir.file("out")
        try FileManager.default.createDirectory(atPath: inputs, withIntermediateDirectories: false)
        try FileManager.default.createDirectory(atPath: outputs, withIntermediateDirectories: false)
        marker = dir.file("pwned")
    }

    override func tearDown() {
        XCTAssertFalse(FileManager.default.fileExists(atPath: marker), "a payload ran")
        dir.remove()
    }

    private func input(_ name: String, _ bytes: Data) throws -> String {
        let path = inputs + "/" + name
        try bytes.write(to: URL(fileURLWithPath: path))
        return path
    }

    private func zip(_ name: String, _ members: [(name: String, data: Data)]) throws -> String {
        let path = inputs + "/" + name
        try ZipArchive.write(members: members, to: path)
        return path
    }

    /// A protocol-2 pickle calling `module.name(arg)` through GLOBAL and REDUCE.
    private func callPickle(_ module: String, _ name: String, _ arg: String) -> Data {
        var b: [UInt8] = [0x80, 0x02, 0x63] + Array("\(module)\n\(name)\n".utf8)
        b += [0x58] + withUnsafeBytes(of: UInt32(arg.utf8.count).littleEndian, Array.init) + Array(arg.utf8)
        b += [0x85, 0x52, 0x2E]  // TUPLE1 REDUCE STOP
        return Data(b)
    }

    /// Hostile files of every reader, built here (names say what is wrong with them).
    private func hostileFiles() throws -> [String] {
        let touch = "touch \(marker!)"
        var files: [String] = []
        files.append(try zip("os-system.pth", [("m/data.pkl", callPickle("os", "system", touch)), ("m/version", Data("3\n".utf8))]))
        var legacy = Data([0x80, 0x02, 0x28, 0x69]) + Data("os\nsystem\n".utf8)  // MARK INST
        legacy.append(Data([0x2E]))
        files.append(try input("inst-legacy.pth", Data([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2E]) + legacy))
        files.append(try zip("dotdot.zip", [("../../evil/saved_model.pb", Data([1]))]))
        files.append(try zip("absolute.pth", [("/tmp/data.pkl", Data([1]))]))
        var objectNpy = Data([0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0])
        let header = "{'descr': '|O', 'fortran_order': False, 'shape': (2,), }".padding(toLength: 117, withPad: " ", startingAt: 0) + "\n"
        objectNpy.append(contentsOf: withUnsafeBytes(of: UInt16(header.utf8.count).littleEndian, Array.init))
        objectNpy.append(Data(header.utf8))
        objectNpy.append(Data(count: 16))
        files.append(try input("object.npy", objectNpy))
        var lyingNpy = NpyArray(shape: [2, 4], floats: Array(repeating: 0.5, count: 8)).serialized()
        lyingNpy.removeLast(8)
        files.append(try input("lying-shape.npy", lyingNpy))
        files.append(try input("huge-header.safetensors", Data([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]) + Data("{}".utf8)))
        var overlapping = Data()
        let json = Data(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#.utf8)
        overlapping.append(contentsOf: withUnsafeBytes(of: UInt64(json.count).littleEndian, Array.init))
        overlapping.append(json)
        overlapping.append(Data(count: 12))
        files.append(try input("overlapping.safetensors", overlapping))
        let savedModel = try Data(contentsOf: URL(fileURLWithPath: try Fixtures.modelFile("clip_autokeras_nsfw_b32.zip")))
        files.append(try input("half-savedmodel.zip", savedModel.prefix(savedModel.count / 2)))
        let h5 = try Data(contentsOf: URL(fileURLWithPath: try Fixtures.modelFile("clip_autokeras_nsfw_b32_dense.h5")))
        files.append(try input("cut.h5", h5.prefix(4096)))
        let legacyTorch = try Data(contentsOf: URL(fileURLWithPath: try Fixtures.modelFile("h14_nsfw_legacy.pth")))
        files.append(try input("cut-legacy.pth", legacyTorch.prefix(legacyTorch.count - 1000)))
        files.append(try input("empty.bin", Data()))
        return files
    }

    private func assertContract(_ result: CLIRun, path: String, code: Int32 = 65, _ label: String,
                                file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertEqual(result.status, code, "\(label): \(result.stderr)", file: file, line: line)
        let lines = result.stderr.split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.isEmpty }
        XCTAssertEqual(lines.count, 1, "\(label): stderr is not one line: \(result.stderr)", file: file, line: line)
        XCTAssertTrue(result.stderr.hasPrefix("clipsafety: \(path): "), "\(label): \(result.stderr)", file: file, line: line)
        XCTAssertEqual(result.stdout, "", label, file: file, line: line)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: outputs), [], "\(label): the output folder is not empty", file: file, line: line)
    }

    func testConvertRefusesEveryHostileFileWith65AndWritesNothing() throws {
        for path in try hostileFiles() {
            let result = try CLI.run(["convert", path, "-o", outputs + "/model.safetensors"])
            try assertContract(result, path: path, "convert \((path as NSString).lastPathComponent)")
        }
    }

    func testScoreAndVerifyRefuseEveryHostileModelWith65AndWriteNothing() throws {
        let embeddings = try input("emb.npy", NpyArray(shape: [2, 512], floats: Array(repeating: 0.0441941738, count: 1024)).serialized())
        let reference = Fixtures.reference("clip_autokeras_nsfw_b32.npz")
        for path in try hostileFiles() {
            let name = (path as NSString).lastPathComponent
            try assertContract(try CLI.run(["score", path, embeddings, "-o", outputs + "/scores.csv"]), path: path, "score \(name)")
            try assertContract(try CLI.run(["verify", path, "--reference", reference]), path: path, "verify \(name)")
        }
    }

    func testHostileEmbeddingsFileIsRefusedWithoutOutput() throws {
        let model = try Fixtures.modelFile("violence_detection_vit_b_32.npy")
        var lying = NpyArray(shape: [3, 512], floats: Array(repeating: 0.04, count: 1536)).serialized()
        lying.removeLast(4)
        let path = try input("lying.npy", lying)
        try assertContract(try CLI.run(["score", model, path, "-o", outputs + "/s.npy"]), path: path, "score lying embeddings")
    }

    func testMissingModelExits66WithOneLine() throws {
        let path = inputs + "/absent.pth"
        try assertContract(try CLI.run(["convert", path, "-o", outputs + "/x.safetensors"]), path: path, code: 66, "missing")
    }

    func testLimitFlagsRefuseAndRaise() throws {
        let model = try Fixtures.modelFile("clip_ViT-B-32_openai_binary_nsfw_head.pth")
        for flags in [["--max-file-bytes", "1000"], ["--max-tensor-elements", "100"], ["--max-uncompressed-bytes", "2000"]] {
            let result = try CLI.run(["convert", model, "-o", outputs + "/x.safetensors"] + flags)
            try assertContract(result, path: model, "\(flags)")
            XCTAssertTrue(result.stderr.contains("limit"), result.stderr)
        }
        // A native file obeys the same limits when it is scored or re-written.
        let native = dir.file("native.safetensors")
        XCTAssertEqual(try CLI.run(["convert", model, "-o", native]).status, 0)
        let result = try CLI.run(["convert", native, "-o", outputs + "/y.safetensors", "--max-tensor-elements", "100"])
        try assertContract(result, path: native, "native over the element limit")
        XCTAssertTrue(result.stderr.contains("--max-tensor-elements"), result.stderr)
        XCTAssertEqual(try CLI.run(["convert", native, "-o", outputs + "/y.safetensors", "--max-tensor-elements", "1000000"]).status, 0)
    }

    func testSuccessfulConvertLeavesOnlyItsOutput() throws {
        let model = try Fixtures.modelFile("violence_detection_vit_l_14.npy")
        let result = try CLI.run(["convert", model, "-o", outputs + "/v.safetensors"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: outputs), ["v.safetensors"])
        let written = try Data(contentsOf: URL(fileURLWithPath: outputs + "/v.safetensors"))
        XCTAssertEqual(written, try NativeModel(bytes: written).serialized(), "the streamed file equals the in-memory serialisation")
    }

    func testAFailedConvertKeepsAnExistingOutputUntouched() throws {
        let existing = outputs + "/model.safetensors"
        try Data("previous".utf8).write(to: URL(fileURLWithPath: existing))
        let path = try input("empty.pth", Data())
        let result = try CLI.run(["convert", path, "-o", existing])
        XCTAssertEqual(result.status, 65)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: outputs), ["model.safetensors"])
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: existing)), Data("previous".utf8))
    }
}
