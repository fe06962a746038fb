import Foundation
import XCTest
import TestSupport
import Runtime
@testable import Converters

final class NpyPromptConverterTests: XCTestCase {
    private func convert(_ file: String, labels: [String]? = nil) throws -> NativeModel {
        let bytes = try Data(contentsOf: URL(fileURLWithPath: try Fixtures.modelFile(file)))
        return try convertModel(bytes: bytes, options: ConversionOptions(fileName: file, stated: StatedMeaning(labels: labels)))
    }

    func testViolenceMatricesMatchReferenceLabelsAndScores() throws {
        for (file, dim, backbone) in [("violence_detection_vit_b_32", 512, "ViT-B-32/openai"),
                                      ("violence_detection_vit_l_14", 768, "ViT-L-14/openai")] {
            let model = try convert(file + ".npy")
            let cmp = try ReferenceComparison(model: model, reference: file + ".npz")
            print("\(file): max |err| \(cmp.maxAbsError) over \(cmp.rows) rows, labels identical: \(cmp.labelsIdentical ?? false)")
            XCTAssertLessThanOrEqual(cmp.maxAbsError, 1e-5, file)
            XCTAssertEqual(cmp.labelsIdentical, true, file)
            XCTAssertEqual(model.graph, [.promptScores(prompts: "prompts"), .argmax])
            XCTAssertEqual(model.tensors.map(\.name), ["prompts"])
            XCTAssertEqual(model.tensors.first?.shape, [2, dim])
            XCTAssertEqual(model.card.labels, ["other", "violent"])
            XCTAssertEqual(model.card.outputColumns, ["other", "violent"])
            XCTAssertEqual(model.card.positiveLabel, "violent")
            XCTAssertEqual(model.card.task, .promptClassifier)
            XCTAssertEqual(model.card.backbone, backbone)
            XCTAssertEqual(model.source.sourceFormat, "npy")
            XCTAssertEqual(model.source.originalFile, file + ".npy")
        }
    }

    func testCLIVerifiesNpyDirectly() throws {
        let r = try runCLI(["verify", try Fixtures.modelFile("violence_detection_vit_l_14.npy"),
                            "--reference", Fixtures.reference("violence_detection_vit_l_14.npz"), "--atol", "1e-5"])
        XCTAssertEqual(r.status, 0, r.stderr + r.stdout)
        XCTAssertTrue(r.stdout.contains("labels     64 of 64 identical"), r.stdout)
    }

    func testLabelsOverride() throws {
        let model = try convert("violence_detection_vit_b_32.npy", labels: ["calm", "violent scene"])
        XCTAssertEqual(model.card.labels, ["calm", "violent scene"])
        XCTAssertEqual(model.card.outputColumns, ["calm", "violent scene"])
        XCTAssertEqual(model.card.positiveLabel, "violent scene")
        XCTAssertNoThrow(try Scorer(model: model))
    }

    func testRefusesLabelCountDifferentFromPrompts() {
        XCTAssertThrowsError(try convert("violence_detection_vit_b_32.npy", labels: ["a", "b", "c"])) { error in
            XCTAssertEqual((error as? ClipSafetyError)?.kind, .usage)
            XCTAssertTrue("\(error)".contains("--labels gives 3 names; the model has 2 outputs"), "\(error)")
        }
    }

    func testAnUnknownMatrixIsAModelOnlyWhenTheUserSaysItHoldsPrompts() throws {
        let array = NpyArray(shape: [3, 4], floats: [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0])
        let unstated = ConversionOptions(fileName: "my_prompts.npy", stated: StatedMeaning(backbone: "ViT-B-16/openai"))
        XCTAssertThrowsError(try convertModel(bytes: array.serialized(), options: unstated)) {
            XCTAssertEqual(($0 as? ClipSafetyError)?.kind, .usage)
        }
        let options = ConversionOptions(fileName: "my_prompts.npy", stated: StatedMeaning(task: .promptClassifier, backbone: "ViT-B-16/openai"))
        let model = try convertModel(bytes: array.serialized(), options: options)
        XCTAssertEqual(model.card.name, "my_prompts")
        XCTAssertEqual(model.card.backbone, "ViT-B-16/openai")
        XCTAssertEqual(model.card.task, .promptClassifier)
        XCTAssertEqual(model.card.outputColumns.count, 3)
        XCTAssertNil(model.card.threshold)
        let out = try Scorer(model: model).score([Float]([0, 0, 2, 0]), rows: 1)
        XCTAssertEqual(out.labels, [2])
        XCTAssertEqual(out.scores, [0, 0, 2])
    }

    func testRenamedViolenceMatrixKeepsCatalogMeaning() throws {
        let bytes = try Data(contentsOf: URL(fileURLWithPath: try Fixtures.modelFile("violence_detection_vit_b_32.npy")))
        // Same bytes under another name: matched by checksum.
        let model = try convertModel(bytes: bytes, options: ConversionOptions(fileName: "prompts.npy"))
        XCTAssertEqual(model.card.name, "violence_detection_vit_b_32")
        XCTAssertEqual(model.card.labels, ["other", "violent"])
    }

    func testRefusesNonMatrixAndNonFloatArrays() throws {
        let vector = NpyArray(shape: [4], floats: [1, 2, 3, 4])
        let ints = NpyArray(shape: [2, 2], int64s: [1, 2, 3, 4])
        for (what, array) in [("1-D", vector), ("int", ints)] {
            XCTAssertThrowsError(try convertModel(bytes: array.serialized(), options: ConversionOptions(fileName: "x.npy")), what) { error in
                XCTAssertEqual((error as? ClipSafetyError)?.kind, .mismatch, what)
            }
        }
        let empty = try NpyArray(dtype: .f4, shape: [0, 4], data: Data())
        XCTAssertThrowsError(try convertModel(bytes: empty.serialized(), options: ConversionOptions(fileName: "x.npy")))
    }

    func testRefusesObjectArrays() {
        var header = "{'descr': '|O', 'fortran_order': False, 'shape': (2, 2), }"
        header += String(repeating: " ", count: 64 - (10 + header.utf8.count + 1) % 64) + "\n"
        var bytes = Data([0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0, UInt8(header.utf8.count & 0xff), UInt8(header.utf8.count >> 8)])
        bytes.append(contentsOf: Array(header.utf8))
        bytes.append(contentsOf: [0x80, 0x02, 0x63] + Array("os\nsystem\n".utf8))
        XCTAssertThrowsError(try convertModel(bytes: bytes, options: ConversionOptions(fileName: "x.npy"))) { error in
            XCTAssertEqual((error as? ClipSafetyError)?.kind, .unsafe)
        }
    }
}
