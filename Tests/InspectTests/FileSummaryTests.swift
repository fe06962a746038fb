import Foundation
import XCTest
import Converters
import Inspect
import Runtime
import TestSupport

/// Summaries of the real model files: format, card, identification, layer table, signature.
final class FileSummaryTests: XCTestCase {
    func summary(_ file: String, tensors: Bool = false) throws -> InspectReport {
        try FileSummary.inspect(path: try Fixtures.modelFile(file), options: .init(tensors: tensors))
    }

    func testAutokerasB32LayerTable() throws {
        let r = try summary("clip_autokeras_nsfw_b32.zip")
        XCTAssertEqual(r.format.id, "savedmodel-zip")
        XCTAssertTrue(r.format.convertedInMemory)
        XCTAssertEqual(r.file.bytes, 231_831)
        XCTAssertEqual(r.file.sha256, "78715ab9d64485167e8c9ade3b8e6761a17a16c24d114bd47431ac1dab46462b")
        let m = try XCTUnwrap(r.model)
        XCTAssertEqual(m.identification?.matchedBy, .sha256)
        XCTAssertNil(m.provenance)
        XCTAssertTrue(r.tensors?.allSatisfy { $0.stats == nil } ?? false)
        XCTAssertEqual(r.tensors?.count, 20, "every checkpoint entry, strings and metrics included")
        // One row per op (9) plus the InputLayer and the Dropout, which have no op.
        XCTAssertEqual(m.layers.count, 11)
        XCTAssertEqual(m.layers.compactMap(\.op), ["impute_nan", "categorical_lookup", "normalize", "dense", "relu", "dense", "relu", "dense", "sigmoid"])
        XCTAssertEqual(m.layers.compactMap(\.index), Array(0..<9))
        let lookup = try XCTUnwrap(m.layers.first { $0.op == "categorical_lookup" })
        XCTAssertEqual(lookup.name, "encoding")
        XCTAssertEqual(lookup.source?.className, "MultiCategoryEncoding")
        XCTAssertTrue(lookup.notes.contains("categorical columns 92, 133, 312 (vocabularies 1566/747/745)"), "\(lookup.notes)")
        XCTAssertTrue(lookup.notes.contains { $0.contains("F32") }, "key_dtype F32 is shown")
        let norm = try XCTUnwrap(m.layers.first { $0.op == "normalize" })
        XCTAssertEqual(norm.name, "norm")
        XCTAssertEqual(norm.parameters, 1024)
        XCTAssertTrue(norm.notes[0].contains("max(√variance, ε)") && norm.notes[0].contains("1e-07"), norm.notes[0])
        let dropout = try XCTUnwrap(m.layers.first { $0.source?.className == "Dropout" })
        XCTAssertNil(dropout.op)
        XCTAssertNil(dropout.index)
        XCTAssertEqual(dropout.notes, ["dropout: inactive at inference (rate 0.5)"])
        XCTAssertEqual(dropout.inputShape, [nil, 32])
        let dense1 = try XCTUnwrap(m.layers.first { $0.name == "linear_1" })
        XCTAssertEqual(dense1.inputShape, [nil, 512])
        XCTAssertEqual(dense1.outputShape, [nil, 32])
        XCTAssertEqual(dense1.parameters, 512 * 32 + 32)
        XCTAssertEqual(dense1.source, LayerRow.Source(name: "dense", className: "Dense"))
        XCTAssertEqual(m.layers.last?.outputShape, [nil, 1])
        XCTAssertEqual(m.totalParameters, 1024 + 512 * 32 + 32 + 32 * 32 + 32 + 32 + 1)
        let sig = try XCTUnwrap(m.signature)
        XCTAssertEqual(sig.key, "serving_default")
        XCTAssertEqual(sig.input.name, "input_1")
        XCTAssertEqual(sig.input.dtype, "float64")
        XCTAssertEqual(sig.input.shape, [nil, 512])
        XCTAssertEqual(sig.output.name, "classification_head_1")
        XCTAssertEqual(sig.output.dtype, "float32")
    }

    func testAutokerasL14Vocabularies() throws {
        let m = try XCTUnwrap(try summary("clip_autokeras_binary_nsfw.zip").model)
        let lookup = try XCTUnwrap(m.layers.first { $0.op == "categorical_lookup" })
        XCTAssertTrue(lookup.notes[0].hasPrefix("categorical columns 180, 316, 413, 440, 644 (vocabularies "), lookup.notes[0])
        XCTAssertEqual(m.layers.filter { $0.op == "dense" }.map(\.outputShape), [[nil, 64], [nil, 512], [nil, 256], [nil, 1]])
        XCTAssertFalse(m.layers.contains { $0.source?.className == "Dropout" }, "the L/14 model has no Dropout")
        XCTAssertEqual(m.signature?.input.shape, [nil, 768])
    }

    func testPortHasTheTorchNormalisationRuleAndNoSignature() throws {
        let m = try XCTUnwrap(try summary("clip_ViT-B-32_openai_binary_nsfw_head.pth").model)
        XCTAssertNil(m.signature)
        XCTAssertEqual(m.layers.count, 7)
        XCTAssertTrue(m.layers[0].notes[0].contains("(√variance + ε)") && m.layers[0].notes[0].contains("1e-10"), m.layers[0].notes[0])
        XCTAssertEqual(m.layers.filter { $0.op == "dense" }.map(\.name), ["linear_1", "linear_2", "linear_3"])
        XCTAssertTrue(m.sourceNotes.contains { $0.contains("upstream PyTorch port") }, "\(m.sourceNotes)")
        // The port and the zip hold the same dense weights, so the same parameter count.
        let zip = try XCTUnwrap(try summary("clip_autokeras_nsfw_b32.zip").model)
        XCTAssertEqual(m.totalParameters, zip.totalParameters)
    }

    func testH14ShowsItsDropoutsAndRawOutput() throws {
        for file in ["h14_nsfw.pth", "h14_nsfw_legacy.pth"] {
            let r = try summary(file)
            let m = try XCTUnwrap(r.model)
            XCTAssertEqual(m.card.outputKind, .score)
            XCTAssertTrue(m.cardText.contains("not a probability"))
            XCTAssertEqual(m.identification?.matchedBy, .sha256, "the mirror's stand-in is in the catalog by its own SHA-256")
            let dropouts = m.layers.filter { $0.source?.className == "Dropout" }
            XCTAssertEqual(dropouts.map(\.name), ["layers.2", "layers.5", "layers.8", "layers.11", "layers.14"])
            XCTAssertTrue(dropouts.allSatisfy { $0.notes[0].contains("p 0.2") })
            XCTAssertEqual(m.layers.filter { $0.op == "dense" }.map(\.name), ["layers.0", "layers.3", "layers.6", "layers.9", "layers.12", "layers.15", "layers.16"])
            XCTAssertEqual(m.totalParameters, 1024 * 1024 + 1024 + 1024 * 2048 + 2048 + 2048 * 1024 + 1024 + 1024 * 256 + 256 + 256 * 128 + 128 + 128 * 16 + 16 + 16 + 1)
            XCTAssertTrue(m.sourceNotes[0].contains(file.contains("legacy") ? "legacy" : "zip"))
        }
    }

    func testViolenceMatrixIsAModelAndAnArray() throws {
        let r = try summary("violence_detection_vit_l_14.npy")
        XCTAssertEqual(r.format.id, "npy")
        let m = try XCTUnwrap(r.model)
        XCTAssertEqual(m.layers.map(\.op), ["prompt_scores", "argmax"])
        XCTAssertEqual(m.layers[0].name, "prompts")
        XCTAssertEqual(m.layers[0].outputShape, [nil, 2])
        XCTAssertEqual(m.totalParameters, 2 * 768)
        let array = try XCTUnwrap(r.tensors?.first)
        XCTAssertEqual(array.shape, [2, 768])
        XCTAssertEqual(array.dtype, "F32")
        XCTAssertNil(array.stats, "statistics are opt-in (--stats)")
    }

    func testUnknownMatrixIsOnlyAnArray() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let path = dir.file("embeddings.npy")
        try NpyArray(shape: [3, 4], floats: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, .nan]).serialized().write(to: URL(fileURLWithPath: path))
        let r = try FileSummary.inspect(path: path, options: .init(tensors: true))
        XCTAssertNil(r.model)
        XCTAssertNil(r.modelProblem, "an array is not a model format")
        XCTAssertEqual(r.tensors?.first?.name, "embeddings")
        XCTAssertEqual(r.tensors?.first?.stats?.nan, 1)
        XCTAssertEqual(r.tensors?.first?.stats?.max, 11)
    }

    func testReferenceArchiveListsItsMembers() throws {
        let r = try FileSummary.inspect(path: Fixtures.reference("violence_detection_vit_b_32.npz"), options: .init(tensors: true))
        XCTAssertEqual(r.format.id, "npz")
        XCTAssertNil(r.model)
        XCTAssertEqual(r.tensors?.map(\.name), ["inputs", "labels", "outputs"])
        XCTAssertEqual(r.tensors?.first { $0.name == "labels" }?.dtype, "I64")
        XCTAssertTrue(r.tensors?.allSatisfy { $0.stats != nil } == true)
    }

    func testNativeFileShowsProvenanceAndReadsTensorsOnlyWhenAsked() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let model = try ModelLoader.load(path: try Fixtures.modelFile("clip_autokeras_nsfw_b32.zip"))
        let path = dir.file("b32.safetensors")
        try model.write(to: path)
        let plain = try FileSummary.inspect(path: path)
        XCTAssertEqual(plain.format.id, "clipsafety-native")
        XCTAssertFalse(plain.format.convertedInMemory)
        XCTAssertEqual(plain.tensors?.count, model.tensors.count, "tensors are listed from the header")
        XCTAssertTrue(plain.tensors?.allSatisfy { $0.stats == nil } ?? false, "values are read only for --stats")
        let m = try XCTUnwrap(plain.model)
        XCTAssertEqual(m.provenance?.sourceFormat, "savedmodel-zip")
        XCTAssertEqual(m.identification?.matchedBy, .provenance)
        XCTAssertNil(m.layers.first { $0.source != nil }, "a native file has no source layers")
        XCTAssertEqual(m.layers.count, 9)
        XCTAssertEqual(m.totalParameters, 18_529)
        let full = try FileSummary.inspect(path: path, options: .init(tensors: true))
        let tensors = try XCTUnwrap(full.tensors)
        XCTAssertEqual(tensors.count, model.tensors.count)
        let bias = try XCTUnwrap(tensors.first { $0.name == "linear_3.bias" })
        XCTAssertEqual(bias.shape, [1])
        XCTAssertEqual(bias.stats?.min, bias.stats?.max)
    }

    func testPlainSafetensorsListsTensorsOnly() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let bytes = try SafetensorsFile(metadata: ["k": "v"], tensors: [Tensor(name: "w", shape: [2, 2], floats: [1, -1, 3, .infinity])]).serialized()
        let path = try dir.write(bytes, to: "w.safetensors")
        let r = try FileSummary.inspect(path: path)
        XCTAssertNil(r.model)
        XCTAssertEqual(r.tensors?.map(\.name), ["w"])
        XCTAssertNil(r.tensors?.first?.stats)
        let s = try XCTUnwrap(try FileSummary.inspect(path: path, options: .init(tensors: true)).tensors?.first?.stats)
        XCTAssertEqual(s.inf, 1)
        XCTAssertEqual(s.max, 3)
    }

    func testKerasFilesShowTheirLayersAndDropout() throws {
        for file in ["clip_autokeras_nsfw_b32_dense.h5", "clip_autokeras_nsfw_b32_dense.keras"] {
            let r = try summary(file)
            XCTAssertEqual(r.format.id, file.hasSuffix(".h5") ? "keras-h5" : "keras-v3")
            let m = try XCTUnwrap(r.model)
            XCTAssertEqual(m.card.embeddingDim, 512)
            XCTAssertEqual(m.layers.compactMap(\.op), ["normalize", "dense", "relu", "dense", "relu", "dense", "sigmoid"])
            XCTAssertEqual(m.layers.first?.source?.className, "InputLayer")
            let dropout = try XCTUnwrap(m.layers.first { $0.source?.className == "Dropout" })
            XCTAssertEqual(dropout.notes, ["dropout: inactive at inference (rate 0.5)"])
            XCTAssertEqual(m.layers.filter { $0.source?.className == "Dense" && $0.op == "dense" }.count, 3)
            // The dense part of the autokeras model: its weights without the encoding.
            XCTAssertEqual(m.totalParameters, 18_529)
            XCTAssertNil(m.signature)
            XCTAssertFalse(m.sourceNotes.isEmpty)
        }
        let v3 = try XCTUnwrap(try summary("clip_autokeras_nsfw_b32_dense.keras").model)
        XCTAssertTrue(v3.layers.contains { $0.notes.contains { $0.contains("model.weights.h5 at layers/dense_1") } })
    }

    /// Every line of the text report of every real file fits 80 columns.
    func testTextOfEveryFileFitsEightyColumns() throws {
        var paths = try ["clip_autokeras_nsfw_b32.zip", "clip_autokeras_binary_nsfw.zip", "clip_ViT-B-32_openai_binary_nsfw_head.pth",
                         "clip_ViT-L-14_openai_binary_nsfw_head.pth", "h14_nsfw.pth", "h14_nsfw_legacy.pth",
                         "violence_detection_vit_b_32.npy", "violence_detection_vit_l_14.npy",
                         "clip_autokeras_binary_nsfw_dense.h5", "clip_autokeras_binary_nsfw_dense.keras"].map { try Fixtures.modelFile($0) }
        paths.append(Fixtures.reference("clip_autokeras_nsfw_b32.npz"))
        for path in paths {
            let report = try FileSummary.inspect(path: path, options: .init(tensors: true))
            let text = InspectText.render(report)
            for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
                XCTAssertLessThanOrEqual(line.count, 80, "\(path): \(line)")
            }
            XCTAssertFalse(text.contains("\u{1B}["), "no colour unless asked")
            if let m = report.model { XCTAssertTrue(text.hasPrefix("  \(m.card.name): "), "the card comes first") }
        }
    }
}
