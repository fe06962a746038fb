import Foundation
import XCTest
import Converters
import Inspect
import Runtime
import TestSupport

/// The card every catalog model gets, and what the CLI does with it (issue 10).
final class ModelCardTests: XCTestCase {
    struct Expected {
        var file: String
        var backbone: String
        var dim: Int
        var kind: ModelCard.OutputKind
        var range: [Double]?
        var columns: [String]
    }

    let catalog: [Expected] = [
        Expected(file: "clip_autokeras_nsfw_b32.zip", backbone: "ViT-B-32/openai", dim: 512, kind: .probability, range: [0, 1], columns: ["nsfw"]),
        Expected(file: "clip_autokeras_binary_nsfw.zip", backbone: "ViT-L-14/openai", dim: 768, kind: .probability, range: [0, 1], columns: ["nsfw"]),
        Expected(file: "clip_ViT-B-32_openai_binary_nsfw_head.pth", backbone: "ViT-B-32/openai", dim: 512, kind: .probability, range: [0, 1], columns: ["nsfw"]),
        Expected(file: "clip_ViT-L-14_openai_binary_nsfw_head.pth", backbone: "ViT-L-14/openai", dim: 768, kind: .probability, range: [0, 1], columns: ["nsfw"]),
        Expected(file: "violence_detection_vit_b_32.npy", backbone: "ViT-B-32/openai", dim: 512, kind: .logits, range: [-1, 1], columns: ["other", "violent"]),
        Expected(file: "violence_detection_vit_l_14.npy", backbone: "ViT-L-14/openai", dim: 768, kind: .logits, range: [-1, 1], columns: ["other", "violent"]),
        Expected(file: "h14_nsfw.pth", backbone: "ViT-H-14/laion2b_s32b_b79k", dim: 1024, kind: .score, range: nil, columns: ["nsfw"]),
        Expected(file: "h14_nsfw_legacy.pth", backbone: "ViT-H-14/laion2b_s32b_b79k", dim: 1024, kind: .score, range: nil, columns: ["nsfw"]),
        Expected(file: "clip_autokeras_nsfw_b32_dense.h5", backbone: "ViT-B-32/openai", dim: 512, kind: .probability, range: [0, 1], columns: ["nsfw"]),
        Expected(file: "clip_autokeras_nsfw_b32_dense.keras", backbone: "ViT-B-32/openai", dim: 512, kind: .probability, range: [0, 1], columns: ["nsfw"]),
        Expected(file: "clip_autokeras_binary_nsfw_dense.h5", backbone: "ViT-L-14/openai", dim: 768, kind: .probability, range: [0, 1], columns: ["nsfw"]),
        Expected(file: "clip_autokeras_binary_nsfw_dense.keras", backbone: "ViT-L-14/openai", dim: 768, kind: .probability, range: [0, 1], columns: ["nsfw"]),
    ]

    func testEveryCatalogModelCarriesItsMeaningThroughTheNativeFile() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        for e in catalog {
            let converted = try ModelLoader.load(path: try Fixtures.modelFile(e.file))
            let card = converted.card
            XCTAssertEqual(card.backbone, e.backbone, e.file)
            XCTAssertEqual(card.embeddingDim, e.dim, e.file)
            XCTAssertEqual(card.inputPrecondition, "l2-normalized", e.file)
            XCTAssertEqual(card.outputKind, e.kind, e.file)
            XCTAssertEqual(card.outputRange, e.range, e.file)
            XCTAssertEqual(card.outputColumns, e.columns, e.file)
            XCTAssertNotNil(card.thresholdSource, e.file)
            XCTAssertNotNil(card.positiveLabel, e.file)
            XCTAssertFalse(card.description?.isEmpty ?? true, e.file)
            let path = dir.file(e.file + ".safetensors")
            try converted.write(to: path)
            let reread = try NativeModel(contentsOf: path)
            XCTAssertEqual(reread.card, card, "card of \(e.file) survives the native file")
            XCTAssertEqual(reread.source, converted.source, e.file)
        }
    }

    func testH14OutputIsNeverSquashed() throws {
        let model = try ModelLoader.load(path: try Fixtures.modelFile("h14_nsfw.pth"))
        XCTAssertFalse(model.graph.contains(.sigmoid), "raw regression output stays raw")
        XCTAssertEqual(model.card.outputKind, .score)
    }

    func testB32WidthIntoL14ModelExits65NamingBothWidths() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let rows = [Float](repeating: Float(1 / 512.0.squareRoot()), count: 2 * 512)
        try NpyArray(shape: [2, 512], floats: rows).serialized().write(to: URL(fileURLWithPath: dir.file("b32.npy")))
        let run = try CLI.run(["score", try Fixtures.modelFile("clip_ViT-L-14_openai_binary_nsfw_head.pth"), dir.file("b32.npy"), "-o", dir.file("o.csv")])
        XCTAssertEqual(run.status, 65)
        XCTAssertTrue(run.stderr.contains("512") && run.stderr.contains("768") && run.stderr.contains("ViT-L-14"), run.stderr)
    }

    func testViolenceCSVNamesColumnsAndLabels() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let ref = try NpzArchive.read(contentsOf: Fixtures.reference("violence_detection_vit_l_14.npz"))
        try XCTUnwrap(ref["inputs"]).serialized().write(to: URL(fileURLWithPath: dir.file("x.npy")))
        let run = try CLI.run(["score", try Fixtures.modelFile("violence_detection_vit_l_14.npy"), dir.file("x.npy"), "-o", dir.file("o.csv")])
        XCTAssertEqual(run.status, 0, run.stderr)
        let lines = try String(contentsOfFile: dir.file("o.csv"), encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.first, "row,other,violent,label,is_violent")
        let labels = try XCTUnwrap(ref["labels"]).int64Values()
        for (i, line) in lines.dropFirst().enumerated() {
            XCTAssertEqual(String(line.split(separator: ",")[3]), labels[i] == 1 ? "violent" : "other")
        }
    }
}
