import Foundation
import XCTest
import Runtime

/// Small native models built by hand, with outputs a test can compute independently.
public enum HandBuilt {
    /// normalize (Keras rule) → dense 4→3 → relu → dense 3→1 → sigmoid, on 4-wide input.
    public static func binaryModel(threshold: Double = 0.5) -> NativeModel {
        let card = ModelCard(
            name: "hand-built", task: .binaryNSFW, backbone: "test/none", embeddingDim: 4,
            outputKind: .probability, outputColumns: ["nsfw"], outputRange: [0, 1],
            labels: ["safe", "nsfw"], positiveLabel: "nsfw", threshold: threshold,
            thresholdSource: "user")
        let tensors = [
            Tensor(name: "norm.mean", shape: [4], floats: mean),
            Tensor(name: "norm.variance", shape: [4], floats: variance),
            Tensor(name: "linear_1.weight", shape: [3, 4], floats: w1),
            Tensor(name: "linear_1.bias", shape: [3], floats: b1),
            Tensor(name: "linear_2.weight", shape: [1, 3], floats: w2),
            Tensor(name: "linear_2.bias", shape: [1], floats: b2),
        ]
        let graph: [GraphOp] = [
            .normalize(mean: "norm.mean", variance: "norm.variance", denominator: .maxSqrtVarianceEpsilon, epsilon: 1e-7),
            .dense(weight: "linear_1.weight", bias: "linear_1.bias"),
            .relu,
            .dense(weight: "linear_2.weight", bias: "linear_2.bias"),
            .sigmoid,
        ]
        return NativeModel(card: card, source: Provenance(originalFile: "hand-built", sha256: String(repeating: "0", count: 64), sourceFormat: "hand-built"), graph: graph, tensors: tensors)
    }

    public static let mean: [Float] = [0.1, -0.2, 0.0, 0.5]
    public static let variance: [Float] = [4, 0.25, 0, 1]
    public static let w1: [Float] = [1, 0, -1, 2, 0.5, 0.5, 0.5, 0.5, -1, 1, 0, 0]
    public static let b1: [Float] = [0.1, -0.1, 0]
    public static let w2: [Float] = [1, -2, 0.5]
    public static let b2: [Float] = [-0.25]

    /// The binary model's output for one row, computed in Double without BLAS.
    public static func expectedBinary(_ x: [Double]) -> Double {
        var h = [Double](repeating: 0, count: 4)
        for c in 0..<4 {
            let den = max(Double(variance[c]).squareRoot(), Double(Float(1e-7)))
            h[c] = (x[c] - Double(mean[c])) / den
        }
        var z = [Double](repeating: 0, count: 3)
        for o in 0..<3 {
            var s = Double(b1[o])
            for i in 0..<4 { s += Double(w1[o * 4 + i]) * h[i] }
            z[o] = max(s, 0)
        }
        var y = Double(b2[0])
        for i in 0..<3 { y += Double(w2[i]) * z[i] }
        return 1 / (1 + exp(-y))
    }

    /// prompt_scores with two 3-wide prompts, then argmax.
    public static func promptModel() -> NativeModel {
        let card = ModelCard(
            name: "hand-built-prompts", task: .promptClassifier, backbone: "test/none", embeddingDim: 3,
            outputKind: .logits, outputColumns: ["other", "violent"], outputRange: [-1, 1],
            labels: ["other", "violent"], positiveLabel: "violent")
        return NativeModel(
            card: card,
            source: Provenance(originalFile: "hand-built", sha256: String(repeating: "0", count: 64), sourceFormat: "hand-built"),
            graph: [.promptScores(prompts: "prompts"), .argmax],
            tensors: [Tensor(name: "prompts", shape: [2, 3], floats: [1, 0, 0, 0, 0.6, 0.8])])
    }

    /// normalize → dense `width`→64 → relu → dense 64→3 → argmax, with fixed pseudo-random
    /// weights: enough work per row that large batches are split into parts across threads.
    public static func wideModel(width: Int = 256) -> NativeModel {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> Float {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: state >> 11) % 2001 - 1000) / 1000
        }
        let hidden = 64
        let card = ModelCard(
            name: "hand-built-wide", task: .promptClassifier, backbone: "test/none", embeddingDim: width,
            outputKind: .logits, outputColumns: ["a", "b", "c"], labels: ["a", "b", "c"])
        let tensors = [
            Tensor(name: "mean", shape: [width], floats: (0..<width).map { _ in next() / 100 }),
            Tensor(name: "variance", shape: [width], floats: (0..<width).map { _ in 0.5 + abs(next()) }),
            Tensor(name: "w1", shape: [hidden, width], floats: (0..<(hidden * width)).map { _ in next() }),
            Tensor(name: "b1", shape: [hidden], floats: (0..<hidden).map { _ in next() }),
            Tensor(name: "w2", shape: [3, hidden], floats: (0..<(3 * hidden)).map { _ in next() }),
        ]
        return NativeModel(
            card: card,
            source: Provenance(originalFile: "hand-built", sha256: String(repeating: "0", count: 64), sourceFormat: "hand-built"),
            graph: [.normalize(mean: "mean", variance: "variance", denominator: .sqrtVariancePlusEpsilon, epsilon: 1e-10),
                    .dense(weight: "w1", bias: "b1"), .relu, .dense(weight: "w2", bias: nil), .argmax],
            tensors: tensors)
    }
}

/// A temporary folder holding the hand-built binary model: the setting of most command tests.
open class HandBuiltModelTestCase: XCTestCase {
    public var dir: TemporaryDirectory!
    /// `hand.safetensors`: `HandBuilt.binaryModel()` written in `dir`.
    public var modelPath: String!

    open override func setUpWithError() throws {
        dir = try TemporaryDirectory()
        modelPath = dir.file("hand.safetensors")
        try HandBuilt.binaryModel().write(to: modelPath)
    }

    open override func tearDown() { dir.remove() }
}
