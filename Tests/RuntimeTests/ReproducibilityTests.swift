import XCTest
import Converters
@testable import Runtime
import TestSupport

/// A row's output bytes depend only on the model and the row: not on the batch it is scored in,
/// its position there, the thread count or the element type's path through the first step.
final class ReproducibilityTests: XCTestCase {
    /// Row counts around the product kernel's tiles (6 rows) and row blocks (a multiple of 6
    /// near 49152 / width), primes, and none.
    static let rowCounts = [0, 1, 2, 5, 6, 7, 11, 13, 47, 48, 49, 97, 191, 192, 193, 389, 1031]

    func testRandomGraphsScoreTheSameBytesWhateverTheBatchingAndThreads() throws {
        var rng = SplitMix(seed: 24)
        for trial in 0..<24 {
            let model = RandomGraph.model(&rng)
            let n = Self.rowCounts[trial % Self.rowCounts.count]
            let values = RandomGraph.rows(n, width: model.card.embeddingDim, &rng)
            let whole = try score(model, values, rows: n, batch: Swift.max(n, 1), threads: 1, as: .float32)
            for (batch, threads) in [(1, 1), (5, 2), (64, 3), (Swift.max(n, 1), 2), (Swift.max(n / 3, 1), 2)] {
                let split = try score(model, values, rows: n, batch: batch, threads: threads, as: .float32)
                XCTAssertEqual(split.bits, whole.bits, "trial \(trial): \(model.graph.map(\.opName)), \(n) rows, batch \(batch), \(threads) threads")
                XCTAssertEqual(split.labels, whole.labels, "trial \(trial)")
            }
            // float16 and float64 rows holding float32-exact values take their own first pass
            // (widening, narrowing) but must land on the same bytes as their float32 form.
            let halves = values.map { Float(Float16($0)) }
            let f16 = try score(model, halves, rows: n, batch: 7, threads: 2, as: .float16)
            XCTAssertEqual(f16.bits, try score(model, halves, rows: n, batch: n + 1, threads: 1, as: .float32).bits, "trial \(trial) f16")
            XCTAssertEqual(try score(model, values, rows: n, batch: 13, threads: 2, as: .float64).bits, whole.bits, "trial \(trial) f64")
        }
    }

    func testProductKernelGivesThePortableOrdersBits() {
        var rng = SplitMix(seed: 7)
        for (rows, inputs, outputs) in [(1, 1, 1), (7, 33, 17), (13, 512, 32), (6, 64, 64), (20, 100, 130), (5, 3, 200), (97, 300, 5), (200, 1000, 40)] {
            let weight = (0..<(inputs * outputs)).map { _ in rng.float() }
            let x = (0..<(rows * inputs)).map { _ in rng.float() }
            let packed = PackedWeights(weight, outputs: outputs, inputs: inputs)
            var fast = [Float](repeating: .nan, count: rows * outputs), portable = fast
            packed.multiply(x, rows: rows, into: &fast)
            packed.multiply(x, rows: rows, into: &portable, portable: true)
            XCTAssertEqual(fast.map(\.bitPattern), portable.map(\.bitPattern), "\(rows)×\(inputs)·\(inputs)×\(outputs)")
            // And the order is the plain one: each element an FMA chain over the inputs.
            let r = rows - 1, j = outputs - 1
            let chain = (0..<inputs).reduce(Float(0)) { $0.addingProduct(x[r * inputs + $1], weight[j * inputs + $1]) }
            XCTAssertEqual(fast[r * outputs + j].bitPattern, chain.bitPattern)
        }
    }

    func testL14PortScoresTheSameBytesWhateverTheBatchingAndThreads() throws {
        let model = try ModelLoader.load(path: try Fixtures.modelFile("clip_ViT-L-14_openai_binary_nsfw_head.pth"))
        var rng = SplitMix(seed: 14)
        let n = 389
        let values = RandomGraph.unitRows(n, width: model.card.embeddingDim, &rng).map { Float(Float16($0)) }
        let whole = try score(model, values, rows: n, batch: 1024, threads: 1, as: .float16)
        for (batch, threads) in [(1024, 2), (64, 2), (7, 1), (1, 1)] {
            XCTAssertEqual(try score(model, values, rows: n, batch: batch, threads: threads, as: .float16).bits, whole.bits,
                           "batch \(batch), \(threads) threads")
        }
    }

    struct Scores {
        var bits: [UInt32]
        var labels: [Int64]?
    }

    /// Scores `rows` in batches of `batch` rows with `threads`, stored as `type`.
    func score(_ model: NativeModel, _ values: [Float], rows: Int, batch: Int, threads: Int, as type: EmbeddingElementType) throws -> Scores {
        let scorer = try Scorer(model: model, parallelism: threads)
        let width = model.card.embeddingDim
        var out = Scores(bits: [], labels: scorer.producesLabels ? [] : nil)
        for first in stride(from: 0, to: Swift.max(rows, 1), by: batch) {
            let slice = Array(values[(first * width)..<(Swift.min(first + batch, rows) * width)])
            let count = slice.count / width
            let result: ScoreResult
            switch type {
            case .float32: result = try scorer.score(slice, rows: count)
            case .float64: result = try scorer.score(slice.map(Double.init), rows: count)
            case .float16:
                let halves = slice.map { Float16($0) }
                result = try halves.withUnsafeBytes {
                    try scorer.score(EmbeddingBatch(base: $0.baseAddress ?? UnsafeRawPointer(bitPattern: 8)!, rows: count, columns: width, elementType: .float16))
                }
            }
            out.bits += result.scores.map(\.bitPattern)
            if let labels = result.labels { out.labels? += labels }
        }
        return out
    }
}

/// Random native graphs of every op, valid by construction.
enum RandomGraph {
    static func model(_ rng: inout SplitMix) -> NativeModel {
        let inputWidth = 1 + Int(rng.next() % 40)
        var width = inputWidth
        var graph: [GraphOp] = [], tensors: [Tensor] = []
        func add(_ name: String, _ shape: [Int]) -> String {
            tensors.append(Tensor(name: name, shape: shape, floats: (0..<shape.reduce(1, *)).map { _ in rng.float() }))
            return name
        }
        if rng.coin() { graph.append(.imputeNaN(columns: rng.coin() ? nil : [0], value: 0.25)) }
        if rng.coin() {
            let keys = ["0.500000", "-0.250000", "nan", "0.000000"].flatMap { Array($0.utf8) + [UInt8(0)] }
            tensors += [Tensor(name: "keys", shape: [keys.count], bytes: keys), Tensor(name: "values", shape: [4], int64s: [1, 2, 3, 4])]
            graph.append(.categoricalLookup([CategoricalColumn(column: width - 1, keys: "keys", values: "values", oovIndex: 0,
                                                               keyDType: rng.coin() ? .f32 : nil)]))
        }
        if rng.coin() {
            let mean = add("mean\(graph.count)", [width])
            tensors.append(Tensor(name: "variance\(graph.count)", shape: [width], floats: (0..<width).map { _ in abs(rng.float()) + 0.1 }))
            graph.append(.normalize(mean: mean, variance: "variance\(graph.count)", denominator: .maxSqrtVarianceEpsilon, epsilon: 1e-7))
        }
        for layer in 0..<(1 + Int(rng.next() % 3)) {
            let outputs = [1, 2, 4, 5, 16, 17, 33][Int(rng.next() % 7)]
            if rng.coin() || layer == 0 && rng.coin() {
                graph.append(.dense(weight: add("w\(layer)", [outputs, width]), bias: rng.coin() ? add("b\(layer)", [outputs]) : nil))
            } else {
                graph.append(.promptScores(prompts: add("p\(layer)", [outputs, width])))
            }
            width = outputs
            if rng.coin() { graph.append(rng.coin() ? .relu : .sigmoid) }
        }
        if rng.coin() { graph.append(.argmax) }
        let card = ModelCard(name: "random", task: .regression, backbone: "test", embeddingDim: inputWidth,
                             outputKind: .score, outputColumns: (0..<width).map { "c\($0)" }, labels: [])
        return NativeModel(card: card, source: Provenance(originalFile: "random", sha256: "", sourceFormat: "hand-built"),
                           graph: graph, tensors: tensors)
    }

    /// Rows of values in -1…1, some exactly on the vocabulary's keys, a few NaN.
    static func rows(_ n: Int, width: Int, _ rng: inout SplitMix) -> [Float] {
        (0..<(n * width)).map { _ in
            switch rng.next() % 16 {
            case 0: return .nan
            case 1: return 0.5
            case 2: return -0.25
            default: return rng.float()
            }
        }
    }

    /// Rows of unit norm, like CLIP embeddings.
    static func unitRows(_ n: Int, width: Int, _ rng: inout SplitMix) -> [Float] {
        var values = (0..<(n * width)).map { _ in rng.float() }
        for r in 0..<n {
            let norm = (0..<width).reduce(Float(0)) { $0 + values[r * width + $1] * values[r * width + $1] }.squareRoot()
            for c in 0..<width { values[r * width + c] /= norm }
        }
        return values
    }
}

extension SplitMix {
    /// Uniform in -1…1, on a 2⁻²³ grid.
    mutating func float() -> Float { Float(Int64(next() >> 40) - (1 << 23)) / Float(1 << 23) }

    mutating func coin() -> Bool { next() & 1 == 1 }
}
