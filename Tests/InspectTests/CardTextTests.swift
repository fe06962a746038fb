import Foundation
import XCTest
import Converters
import Inspect
import Runtime

/// The card sentence of issue 10, for each kind of upstream head.
final class CardTextTests: XCTestCase {
    func card(_ name: String) throws -> ModelCard {
        try XCTUnwrap(Catalog.models.first { $0.name == name }).card
    }

    func testProbabilityHeadSentence() throws {
        XCTAssertEqual(CardText.sentence(try card("clip_autokeras_binary_nsfw")),
                       "ViT-L/14 embeddings (768, L2-normalised) → probability that the image is NSFW; 0.5 threshold (upstream README)")
    }

    func testRawScoreHeadSaysItIsNotAProbability() throws {
        XCTAssertEqual(CardText.sentence(try card("h14_nsfw")),
                       "ViT-H/14 embeddings (1024, L2-normalised) → NSFW score: raw, unbounded, not a probability; 0.5 threshold (clip-retrieval)")
    }

    func testPromptClassifierSentence() throws {
        XCTAssertEqual(CardText.sentence(try card("violence_detection_vit_b_32")),
                       "ViT-B/32 embeddings (512, L2-normalised) → argmax of prompt similarities (other, violent), class 1 = violent (clip-retrieval)")
    }

    func testUnknownBackboneAndUserThreshold() {
        var c = ModelCard(name: "x", task: .binaryNSFW, backbone: "unknown", embeddingDim: 16, inputPrecondition: "none",
                          outputKind: .probability, outputColumns: ["nsfw"], outputRange: [0, 1], labels: ["safe", "nsfw"],
                          positiveLabel: "nsfw")
        XCTAssertEqual(CardText.sentence(c), "embeddings of an unknown CLIP backbone (16) → probability that the image is NSFW")
        c.threshold = 0.25
        c.thresholdSource = "user"
        XCTAssertTrue(CardText.sentence(c).hasSuffix("; 0.25 threshold (user)"))
    }
}
