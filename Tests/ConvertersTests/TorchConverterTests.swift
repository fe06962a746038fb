import Foundation
import XCTest
import TestSupport
import Runtime
@testable import Converters

/// Scores a reference's inputs with `model` and compares with its outputs (and labels).
struct ReferenceComparison {
    var rows: Int
    var maxAbsError: Double
    var labelsIdentical: Bool?
    var decisionFlips: Int?

    init(model: NativeModel, reference name: String) throws {
        let scorer = try Scorer(model: model)
        let arrays = try NpzArchive.read(contentsOf: Fixtures.reference(name))
        guard let inputs = arrays["inputs"], let outputs = arrays["outputs"] else {
            throw ClipSafetyError.malformed("reference \(name) lacks inputs/outputs")
        }
        let n = inputs.shape[0]
        let result = try inputs.withRows(0, n) { try scorer.score($0) }
        let expected = outputs.floatValues()
        XCTAssertEqual(result.scores.count, expected.count, "output size")
        rows = n
        maxAbsError = zip(result.scores, expected).map { Double(abs($0 - $1)) }.max() ?? .infinity
        if let labels = arrays["labels"] {
            labelsIdentical = result.labels == labels.int64Values()
        }
        if let t = model.card.threshold, result.columns == 1 {
            decisionFlips = zip(result.scores, expected).filter { (Double($0) > t) != (Double($1) > t) }.count
        }
    }
}

final class TorchConverterTests: XCTestCase {
    private func convert(_ file: String, arch: String? = nil) throws -> NativeModel {
        let path = try Fixtures.modelFile(file)
        var options = ConversionOptions(fileName: file)
        options.arch = arch
        return try convertModel(bytes: try Data(contentsOf: URL(fileURLWithPath: path)), options: options)
    }

    // MARK: End-to-end against the references

    func testB32PortMatchesPyTorchReference() throws {
        let model = try convert("clip_ViT-B-32_openai_binary_nsfw_head.pth")
        let cmp = try ReferenceComparison(model: model, reference: "clip_ViT-B-32_openai_binary_nsfw_head.npz")
        print("B/32 port: max |err| \(cmp.maxAbsError) over \(cmp.rows) rows")
        XCTAssertLessThanOrEqual(cmp.maxAbsError, 1e-5)
        XCTAssertEqual(cmp.decisionFlips, 0)
        XCTAssertEqual(model.card.name, "clip_ViT-B-32_openai_binary_nsfw_head")
        XCTAssertEqual(model.card.backbone, "ViT-B-32/openai")
        XCTAssertEqual(model.source.sourceFormat, "torch-zip")
        XCTAssertEqual(model.graph.first, .normalize(mean: "norm.mean", variance: "norm.variance",
                                                    denominator: .sqrtVariancePlusEpsilon, epsilon: 1e-10))
        XCTAssertEqual(model.graph.last, .sigmoid)
    }

    func testL14PortMatchesPyTorchReference() throws {
        let model = try convert("clip_ViT-L-14_openai_binary_nsfw_head.pth")
        let cmp = try ReferenceComparison(model: model, reference: "clip_ViT-L-14_openai_binary_nsfw_head.npz")
        print("L/14 port: max |err| \(cmp.maxAbsError) over \(cmp.rows) rows")
        XCTAssertLessThanOrEqual(cmp.maxAbsError, 1e-5)
        XCTAssertEqual(cmp.decisionFlips, 0)
        XCTAssertEqual(model.card.embeddingDim, 768)
        XCTAssertEqual(model.graph.filter { $0 == .relu }.count, 3)
    }

    func testH14StandInMatchesReferenceInBothTorchFormats() throws {
        var tensorsByFormat: [String: [Tensor]] = [:]
        for file in ["h14_nsfw.pth", "h14_nsfw_legacy.pth"] {
            let model = try convert(file)
            let cmp = try ReferenceComparison(model: model, reference: "h14_nsfw.npz")
            print("H/14 \(file): max |err| \(cmp.maxAbsError) over \(cmp.rows) rows")
            XCTAssertLessThanOrEqual(cmp.maxAbsError, 1e-5, file)
            XCTAssertEqual(cmp.decisionFlips, 0, file)
            XCTAssertEqual(model.card.outputKind, .score)
            XCTAssertNil(model.card.outputRange)
            XCTAssertEqual(model.card.name, (file as NSString).deletingPathExtension)
            XCTAssertEqual(model.card.backbone, "ViT-H-14/laion2b_s32b_b79k")
            // ReLU after each Linear except the last two; raw output.
            XCTAssertEqual(model.graph.map(\.opName), ["dense", "relu", "dense", "relu", "dense", "relu", "dense", "relu",
                                                       "dense", "relu", "dense", "dense"])
            tensorsByFormat[model.source.sourceFormat] = model.tensors
        }
        XCTAssertEqual(Set(tensorsByFormat.keys), ["torch-zip", "torch-legacy"])
        XCTAssertEqual(tensorsByFormat["torch-zip"], tensorsByFormat["torch-legacy"])
    }

    func testCLIVerifiesUpstreamTorchFilesDirectly() throws {
        // `verify` on the .pth itself goes through ModelLoader's torch cases.
        for (file, ref) in [("h14_nsfw_legacy.pth", "h14_nsfw.npz"), ("h14_nsfw.pth", "h14_nsfw.npz"),
                            ("clip_ViT-B-32_openai_binary_nsfw_head.pth", "clip_ViT-B-32_openai_binary_nsfw_head.npz")] {
            let r = try runCLI(["verify", try Fixtures.modelFile(file), "--reference", Fixtures.reference(ref), "--atol", "1e-5"])
            XCTAssertEqual(r.status, 0, file + r.stderr + r.stdout)
            XCTAssertTrue(r.stdout.contains("PASS"), r.stdout)
        }
    }

    // MARK: Tensor names

    func testPortTensorNamesAreUpstreamStateDictKeys() throws {
        let file = "clip_ViT-B-32_openai_binary_nsfw_head.pth"
        let bytes = try Data(contentsOf: URL(fileURLWithPath: try Fixtures.modelFile(file)))
        let stateDict = try TorchCheckpoint(bytes: bytes)
        let model = try convertModel(bytes: bytes, options: ConversionOptions(fileName: file))
        // What safetensors.torch.load_file returns: the header's tensor names and shapes.
        let written = try SafetensorsFile(bytes: try model.serialized())
        let expected = ["norm.mean", "norm.variance", "linear_1.weight", "linear_1.bias",
                        "linear_2.weight", "linear_2.bias", "linear_3.weight", "linear_3.bias"]
        XCTAssertEqual(stateDict.tensors.map(\.name), expected)
        XCTAssertEqual(Set(written.tensors.map(\.name)), Set(expected))
        for t in stateDict.tensors {
            let w = try XCTUnwrap(written.tensor(named: t.name))
            XCTAssertEqual(w.shape, t.shape, t.name)
            XCTAssertEqual(w.dtype, .f32, t.name)
            XCTAssertEqual(w.data, t.data, t.name)
        }
        XCTAssertEqual(written.tensor(named: "linear_1.weight")?.shape, [32, 512])
    }

    func testConversionIsDeterministic() throws {
        let a = try convert("clip_ViT-L-14_openai_binary_nsfw_head.pth").serialized()
        let b = try convert("clip_ViT-L-14_openai_binary_nsfw_head.pth").serialized()
        XCTAssertEqual(a, b)
    }

    // MARK: Unknown heads and --arch

    private func smallHeadBytes() throws -> Data {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        return try TorchFixtures.zip(pickle: TorchFixtures.stateDictPickle(TorchFixtures.smallHead, legacy: false),
                                     storages: TorchFixtures.smallStorages, in: dir)
    }

    func testUnknownHeadErrorListsKeysAndShowsSpec() throws {
        let bytes = try smallHeadBytes()
        XCTAssertThrowsError(try convertModel(bytes: bytes, options: ConversionOptions(fileName: "head.pth"))) { error in
            let e = error as? ClipSafetyError
            XCTAssertEqual(e?.kind, .unsupported)
            XCTAssertTrue(e?.message.contains("fc.weight [2, 3], fc.bias [2]") ?? false, "\(error)")
            XCTAssertTrue(e?.message.contains("--arch 'linear:fc'") ?? false, "\(error)")
        }
    }

    func testArchSpecConvertsUnknownHead() throws {
        let bytes = try smallHeadBytes()
        let options = ConversionOptions(fileName: "head.pth", stated: StatedMeaning(backbone: "ViT-X/test"), arch: "linear:fc, sigmoid")
        let model = try convertModel(bytes: bytes, options: options)
        XCTAssertEqual(model.graph, [.dense(weight: "fc.weight", bias: "fc.bias"), .sigmoid])
        XCTAssertEqual(model.card.embeddingDim, 3)
        XCTAssertEqual(model.card.backbone, "ViT-X/test")
        XCTAssertEqual(model.card.outputColumns.count, 2)
        let out = try Scorer(model: model).score([Float]([1, 0, 0]), rows: 1)
        XCTAssertEqual(out.scores[0], 1 / (1 + exp(-1.5)), accuracy: 1e-6)  // 1·1 + 0.5
        XCTAssertEqual(out.scores[1], 1 / (1 + exp(-3.5)), accuracy: 1e-6)  // 4·1 − 0.5
    }

    func testArchSpecMustUseEveryWeight() throws {
        XCTAssertThrowsError(try StateDictHead.build(ArchSpec(parsing: "linear:fc"), from: stateDict([
            Tensor(name: "fc.weight", shape: [1, 2], floats: [1, 2]),
            Tensor(name: "extra.weight", shape: [1, 1], floats: [1]),
        ]))) { error in
            XCTAssertEqual((error as? ClipSafetyError)?.kind, .mismatch)
            XCTAssertTrue("\(error)".contains("extra.weight"))
        }
    }

    func testArchSpecRefusesBrokenShapeChain() throws {
        XCTAssertThrowsError(try StateDictHead.build(ArchSpec(parsing: "linear:a,relu,linear:b"), from: stateDict([
            Tensor(name: "a.weight", shape: [4, 2], floats: [Float](repeating: 1, count: 8)),
            Tensor(name: "b.weight", shape: [1, 3], floats: [1, 2, 3]),
        ]))) { error in
            XCTAssertTrue("\(error)".contains("step 3 (linear:b)"), "\(error)")
        }
    }

    func testArchSpecRefusesMissingTensor() throws {
        XCTAssertThrowsError(try StateDictHead.build(ArchSpec(parsing: "normalize:norm,linear:a"), from: stateDict([
            Tensor(name: "a.weight", shape: [1, 2], floats: [1, 2]),
        ]))) { error in
            XCTAssertTrue("\(error)".contains("'norm.mean'"), "\(error)")
        }
    }

    func testArchSpecParsing() throws {
        let spec = try ArchSpec(parsing: " normalize:norm , linear:layers.0,relu,linear:out")
        XCTAssertEqual(spec.steps, [.normalize(prefix: "norm", epsilon: 1e-10), .linear(prefix: "layers.0"), .relu, .linear(prefix: "out")])
        XCTAssertEqual(try ArchSpec(parsing: spec.text), spec)
        XCTAssertEqual(try ArchSpec(parsing: "normalize:n:1e-5").steps, [.normalize(prefix: "n", epsilon: 1e-5)])
        // `linear` and `linear:` name the root-level weight and bias (LAION's linear aesthetic heads).
        XCTAssertEqual(try ArchSpec(parsing: "linear").steps, [.linear(prefix: "")])
        XCTAssertEqual(try ArchSpec(parsing: "linear:, sigmoid").text, "linear,sigmoid")
        for bad in ["", "relu:x", "softmax", "linear:a,,relu", "normalize:n:-1", "normalize:n:abc", "linear:a:b"] {
            XCTAssertThrowsError(try ArchSpec(parsing: bad), bad) { error in
                XCTAssertEqual((error as? ClipSafetyError)?.kind, .usage, bad)
                XCTAssertTrue("\(error)".contains("ARCH-SPEC"), bad)
            }
        }
    }

    func testRecognisedSpecsMatchDocumentedText() throws {
        let port = try XCTUnwrap(StateDictHead.knownSpec(names([
            Tensor(name: "norm.mean", shape: [2], floats: [0, 0]), Tensor(name: "norm.variance", shape: [2], floats: [1, 1]),
            Tensor(name: "linear_1.weight", shape: [1, 2], floats: [1, 1]), Tensor(name: "linear_1.bias", shape: [1], floats: [0]),
            Tensor(name: "linear_2.weight", shape: [1, 1], floats: [1]), Tensor(name: "linear_2.bias", shape: [1], floats: [0]),
        ])))
        XCTAssertEqual(port.0, .port)
        XCTAssertEqual(port.1.text, "normalize:norm,linear:linear_1,relu,linear:linear_2,sigmoid")
        // A port with a gap in its numbering is not the port.
        XCTAssertNil(StateDictHead.knownSpec(names([
            Tensor(name: "norm.mean", shape: [2], floats: [0, 0]), Tensor(name: "norm.variance", shape: [2], floats: [1, 1]),
            Tensor(name: "linear_2.weight", shape: [1, 2], floats: [1, 1]), Tensor(name: "linear_2.bias", shape: [1], floats: [0]),
        ])))
    }

    private func stateDict(_ tensors: [Tensor]) -> FileDescription {
        FileDescription(format: .torchZip, tensors: tensors.map(DescribedTensor.init))
    }

    private func names(_ tensors: [Tensor]) -> Set<String> { Set(tensors.map(\.name)) }

    func testArchOverridesRecognitionAndRefusesDroppedWeights() throws {
        // The real port with a spec that forgets the normalisation: refused, naming norm.*.
        XCTAssertThrowsError(try convert("clip_ViT-B-32_openai_binary_nsfw_head.pth",
                                         arch: "linear:linear_1,relu,linear:linear_2,relu,linear:linear_3,sigmoid")) { error in
            XCTAssertTrue("\(error)".contains("norm.mean"), "\(error)")
        }
        // The documented spec of the port gives the same model as recognition.
        let spelled = try convert("clip_ViT-B-32_openai_binary_nsfw_head.pth",
                                  arch: "normalize:norm,linear:linear_1,relu,linear:linear_2,relu,linear:linear_3,sigmoid")
        XCTAssertEqual(spelled, try convert("clip_ViT-B-32_openai_binary_nsfw_head.pth"))
    }
}
