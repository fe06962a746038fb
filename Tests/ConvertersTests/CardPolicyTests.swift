import Foundation
import XCTest
@testable import Converters
import Runtime
import TestSupport

/// The one card policy: catalog cards by content, `unknown` otherwise, meaning only when stated.
final class CardPolicyTests: XCTestCase {
    private func bytes(_ file: String) throws -> Data {
        try Data(contentsOf: URL(fileURLWithPath: try Fixtures.modelFile(file)))
    }

    private func smallHead() throws -> Data {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        return try TorchFixtures.zip(pickle: TorchFixtures.stateDictPickle(TorchFixtures.smallHead, legacy: false),
                                     storages: TorchFixtures.smallStorages, in: dir)
    }

    func testRenamedUpstreamFilesKeepTheirCatalogCards() throws {
        for file in ["clip_ViT-B-32_openai_binary_nsfw_head.pth", "violence_detection_vit_l_14.npy",
                     "clip_autokeras_nsfw_b32.zip", "h14_nsfw.pth"] {
            let data = try bytes(file)
            let known = try XCTUnwrap(Catalog.lookup(bytes: data), file)
            let model = try convertModel(bytes: data, options: ConversionOptions(fileName: "downloaded (1).bin"))
            XCTAssertEqual(model.card, known.card, file)
            XCTAssertEqual(model.card.inputPrecondition, "l2-normalized", file)
            XCTAssertEqual(model.source.originalFile, "downloaded (1).bin")
        }
    }

    func testUnknownHeadWithSigmoidIsNotCalledNSFW() throws {
        let model = try convertModel(bytes: try smallHead(),
                                     options: ConversionOptions(fileName: "nsfw_head.pth", arch: "linear:fc,sigmoid"))
        XCTAssertEqual(model.card.task, .unknown)
        XCTAssertEqual(model.card.outputColumns, ["output_0", "output_1"])
        XCTAssertNil(model.card.threshold)
        XCTAssertNil(model.card.positiveLabel)
        XCTAssertEqual(model.card.inputPrecondition, "none")
        XCTAssertEqual(model.card.outputKind, .probability, "a sigmoid bounds the numbers; it says nothing of meaning")
    }

    func testUpstreamPortWeightsInAnotherFileGetAnUnknownCard() throws {
        // The port's tensors in a plain safetensors file: recognised as the port's graph by its
        // keys, but not the catalog's bytes, so nothing about meaning is claimed.
        let port = try convertModel(bytes: try bytes("clip_ViT-B-32_openai_binary_nsfw_head.pth"),
                                    options: ConversionOptions(fileName: "port.pth"))
        let plain = try SafetensorsFile(metadata: [:], tensors: port.tensors).serialized()
        let model = try convertModel(bytes: plain, options: ConversionOptions(fileName: "clip_ViT-B-32_openai_binary_nsfw_head.safetensors"))
        XCTAssertEqual(model.graph, port.graph)
        XCTAssertEqual(model.card.task, .unknown)
        XCTAssertEqual(model.card.backbone, "unknown")
        XCTAssertNil(model.card.threshold)
        XCTAssertEqual(model.source.sourceFormat, "safetensors")
    }

    func testThresholdOnSeveralOutputsIsAUsageError() throws {
        assertClipSafetyError([.usage], containing: "--threshold") {
            try convertModel(bytes: try smallHead(), options: ConversionOptions(
                fileName: "h.pth", stated: StatedMeaning(threshold: 0.5), arch: "linear:fc"))
        }
    }

    func testStatedTaskLabelsAndThresholdOnOneOutput() throws {
        var card = CardPolicy.unknown(name: "m", inputWidth: 3, outputWidth: 1, endsWithSigmoid: true)
        try CardPolicy.apply(StatedMeaning(task: .binaryNSFW, labels: ["ok", "bad"], threshold: 0.7, backbone: "B"), to: &card)
        XCTAssertEqual(card.task, .binaryNSFW)
        XCTAssertEqual(card.labels, ["ok", "bad"])
        XCTAssertEqual(card.positiveLabel, "bad")
        XCTAssertEqual(card.outputColumns, ["bad"])
        XCTAssertEqual(card.threshold, 0.7)
        XCTAssertEqual(card.thresholdSource, "user")
        XCTAssertEqual(card.backbone, "B")
    }

    func testLabelsNameEveryOutputOrItIsAUsageError() throws {
        var card = CardPolicy.unknown(name: "m", inputWidth: 3, outputWidth: 3, endsWithSigmoid: false)
        try CardPolicy.apply(StatedMeaning(labels: ["a", "b", "c"]), to: &card)
        XCTAssertEqual(card.outputColumns, ["a", "b", "c"])
        XCTAssertThrowsError(try CardPolicy.apply(StatedMeaning(labels: ["a", "b"]), to: &card)) { error in
            XCTAssertEqual((error as? ClipSafetyError)?.kind, .usage)
        }
    }

    func testBadArchSpecIsAUsageError() throws {
        assertClipSafetyError([.usage], containing: "ARCH-SPEC") {
            try convertModel(bytes: try smallHead(), options: ConversionOptions(fileName: "h.pth", arch: "linear:fc,softmax"))
        }
    }
}
