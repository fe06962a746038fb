import XCTest
@testable import Runtime
import TestSupport

/// How batches are split across threads, and the input measurement fused into scoring.
final class ExecutionTests: XCTestCase {
    static let width = 256

    /// Rows with a spread of norms (0.5…2), a NaN row and a zero row.
    static func rows(_ n: Int) -> [Float] {
        var values = (0..<(n * width)).map { Float(($0 &* 7919) % 2001 - 1000) / 1000 }
        for r in 0..<n {
            let target = 0.5 + Float(r % 7) / 4
            let norm = (0..<width).reduce(Float(0)) { $0 + values[r * width + $1] * values[r * width + $1] }.squareRoot()
            for c in 0..<width { values[r * width + c] *= target / norm }
        }
        values[3 * width + 5] = .nan
        for c in 0..<width { values[4 * width + c] = 0 }
        return values
    }

    func testLargeBatchesAreSplitIntoPartsAndSmallOnesAreNot() throws {
        let scorer = try Scorer(model: HandBuilt.wideModel(), parallelism: 2)
        XCTAssertEqual(scorer.plan(rows: 4096), 2)
        XCTAssertEqual(scorer.plan(rows: 1), 1, "one row is not worth a thread")
        XCTAssertEqual(try Scorer(model: HandBuilt.wideModel(), parallelism: 1).plan(rows: 4096), 1)
    }

    func testEveryPartitionGivesTheSameBytesAndLabels() throws {
        let n = 3001  // parts of unequal size
        let values = Self.rows(n)
        let single = try Scorer(model: HandBuilt.wideModel(), parallelism: 1).score(values, rows: n)
        for threads in [2, 3, 8] {
            let scorer = try Scorer(model: HandBuilt.wideModel(), parallelism: threads)
            XCTAssertGreaterThan(scorer.plan(rows: n), 1)
            let split = try scorer.score(values, rows: n)
            XCTAssertEqual(split.labels, single.labels, "parallelism \(threads)")
            XCTAssertEqual(split.scores.map(\.bitPattern), single.scores.map(\.bitPattern), "parallelism \(threads)")
        }
        // Row r of a big batch is row r scored alone, to the bit.
        let scorer = try Scorer(model: HandBuilt.wideModel(), parallelism: 2)
        let whole = try scorer.score(values, rows: n)
        for r in [0, 1500, 1501, n - 1] {
            let alone = try scorer.score(Array(values[(r * Self.width)..<((r + 1) * Self.width)]), rows: 1)
            XCTAssertEqual(alone.labels?.first, whole.labels?[r])
            XCTAssertEqual(alone.scores.map(\.bitPattern), whole.scores[(r * 3)..<(r * 3 + 3)].map(\.bitPattern))
        }
    }

    func testScoreMeasuringEqualsASeparateCheckForEveryElementType() throws {
        let n = 2000
        let values = Self.rows(n)
        let scorer = try Scorer(model: HandBuilt.wideModel(), parallelism: 2)
        let workspace = scorer.makeWorkspace(rows: n)
        func check<T>(_ typed: [T], _ type: EmbeddingElementType) throws {
            try typed.withUnsafeBytes { raw in
                let batch = EmbeddingBatch(base: raw.baseAddress!, rows: n, columns: Self.width, elementType: type)
                let (result, measured) = try scorer.scoreMeasuring(batch, workspace: workspace)
                let separate = InputStatistics(batch)
                XCTAssertEqual(measured, separate, "\(type)")
                XCTAssertEqual(measured.nonFiniteRows, 1, "\(type)")
                XCTAssertEqual(measured.minNorm, 0, "\(type): the zero row")
                XCTAssertGreaterThan(measured.offNormRows, n / 2, "\(type)")
                let plain = try scorer.score(batch, workspace: workspace)
                XCTAssertEqual(result.labels, plain.labels, "\(type)")
                XCTAssertTrue(zip(result.scores, plain.scores).allSatisfy { $0.bitPattern == $1.bitPattern }, "\(type): measuring changes no score")
            }
        }
        try check(values, .float32)
        try check(values.map { Double($0) }, .float64)
        try check(values.map { Float16($0) }, .float16)
    }

    func testMeasuringADenseFirstGraphReadsTheInputItself() throws {
        // The prompt model multiplies float32 input where it lies: the sums come from a
        // separate loop there, and must still match.
        let values: [Float] = [3, 4, 0, 0.6, 0.8, 0, .infinity, 0, 0]
        let scorer = try Scorer(model: HandBuilt.promptModel())
        try values.withUnsafeBytes { raw in
            let batch = EmbeddingBatch(base: raw.baseAddress!, rows: 3, columns: 3, elementType: .float32)
            let (_, measured) = try scorer.scoreMeasuring(batch, workspace: scorer.makeWorkspace(rows: 3))
            let separate = InputStatistics(batch)
            XCTAssertEqual(measured.rows, separate.rows)
            XCTAssertEqual(measured.minNorm!, separate.minNorm!, accuracy: 1e-6)
            XCTAssertEqual(measured.maxNorm!, separate.maxNorm!, accuracy: 1e-6)
            XCTAssertEqual(measured.offNormRows, 1)
            XCTAssertEqual(measured.nonFiniteRows, 1)
            XCTAssertEqual(measured.maxNorm!, 5, accuracy: 1e-6)
        }
    }

    /// Two 256-wide prompts with fixed pseudo-random values: a product narrow enough for the
    /// fused few-dot-products kernel.
    static func promptModel(prompts: Int = 2) throws -> Scorer {
        let values = (0..<(prompts * width)).map { Float(($0 &* 104_729) % 2001 - 1000) / 8000 }
        let card = ModelCard(name: "prompts", task: .promptClassifier, backbone: "test/none", embeddingDim: width,
                             outputKind: .logits, outputColumns: (0..<prompts).map { "p\($0)" }, labels: (0..<prompts).map { "p\($0)" })
        let model = NativeModel(card: card, source: Provenance(originalFile: "t", sha256: String(repeating: "0", count: 64), sourceFormat: "t"),
                                graph: [.promptScores(prompts: "p"), .argmax],
                                tensors: [Tensor(name: "p", shape: [prompts, width], floats: values)])
        return try Scorer(model: model, parallelism: 2)
    }

    func testNarrowProductsMatchDoublePrecisionAndMeasureTheInput() throws {
        let n = 3000
        let values = Self.rows(n)
        for prompts in [1, 2, 3, 4, 5] {  // 5 takes the BLAS path
            let scorer = try Self.promptModel(prompts: prompts)
            let weights = (0..<(prompts * Self.width)).map { Double(Float(($0 &* 104_729) % 2001 - 1000) / 8000) }
            for type in [EmbeddingElementType.float32, .float16] {
                let typed: Data = type == .float32 ? values.withUnsafeBytes { Data($0) } : values.map { Float16($0) }.withUnsafeBytes { Data($0) }
                try typed.withUnsafeBytes { raw in
                    let batch = EmbeddingBatch(base: raw.baseAddress!, rows: n, columns: Self.width, elementType: type)
                    let (result, measured) = try scorer.scoreMeasuring(batch, workspace: scorer.makeWorkspace(rows: n))
                    var worst = 0.0
                    for r in 0..<n where r != 3 {
                        for k in 0..<prompts {
                            let expected = (0..<Self.width).reduce(0.0) { $0 + batch.value(row: r, column: $1) * weights[k * Self.width + $1] }
                            worst = max(worst, abs(Double(result.score(row: r, column: k)) - expected))
                        }
                    }
                    XCTAssertLessThan(worst, 1e-5, "\(prompts) prompts, \(type)")
                    XCTAssertTrue(result.score(row: 3).isNaN, "the NaN row stays NaN")
                    let separate = InputStatistics(batch)
                    XCTAssertEqual(measured.offNormRows, separate.offNormRows, "\(prompts) prompts, \(type)")
                    XCTAssertEqual(measured.nonFiniteRows, 1)
                    XCTAssertEqual(measured.maxNorm!, separate.maxNorm!, accuracy: 1e-5)
                }
            }
        }
    }

    /// The narrow-product kernel takes rows in blocks of 2-4; a row's scores and sum of squares
    /// must not depend on its block, its place in the batch or the element type it was widened
    /// from: the same embedding gives the same bits alone, in any batch, as float16 or float32.
    func testNarrowProductRowsScoreTheSameBitsInAnyBatch() throws {
        let n = 29  // no multiple of the blocks (2, 3, 4) nor of the 12 float64 rows narrowed at a time
        let values = Self.rows(n).map { Float(Float16($0)) }  // exact in float16 too
        let halves = values.map { Float16($0) }
        for prompts in 1...4 {
            let scorer = try Self.promptModel(prompts: prompts)
            let whole = try scorer.score(values, rows: n)
            let fromHalves = try halves.withUnsafeBytes { raw in
                try scorer.score(EmbeddingBatch(base: raw.baseAddress!, rows: n, columns: Self.width, elementType: .float16))
            }
            let shifted = try scorer.score(Array(values[Self.width...]), rows: n - 1)
            XCTAssertEqual(whole.scores.map(\.bitPattern), fromHalves.scores.map(\.bitPattern), "\(prompts) prompts: float16 rows")
            XCTAssertEqual(Array(whole.scores[prompts...]).map(\.bitPattern), shifted.scores.map(\.bitPattern), "\(prompts) prompts: batch starting one row later")
            for r in [0, 1, 2, 3, 5, 11, 12, 27, 28] {
                let alone = try scorer.score(Array(values[(r * Self.width)..<((r + 1) * Self.width)]), rows: 1)
                XCTAssertEqual(alone.scores.map(\.bitPattern), Array(whole.scores[(r * prompts)..<((r + 1) * prompts)]).map(\.bitPattern),
                               "\(prompts) prompts, row \(r) alone")
            }
            // The sums measured in blocks: the same statistics as a separate pass over the rows.
            let measured = try values.withUnsafeBytes { raw in
                try scorer.scoreMeasuring(EmbeddingBatch(base: raw.baseAddress!, rows: n, columns: Self.width, elementType: .float32),
                                          workspace: scorer.makeWorkspace(rows: n)).statistics
            }
            let separate = values.withUnsafeBytes { raw in
                InputStatistics(EmbeddingBatch(base: raw.baseAddress!, rows: n, columns: Self.width, elementType: .float32))
            }
            XCTAssertEqual(measured.offNormRows, separate.offNormRows, "\(prompts) prompts")
            XCTAssertEqual(measured.nonFiniteRows, 1, "\(prompts) prompts")
            XCTAssertEqual(measured.minNorm!, separate.minNorm!, accuracy: 1e-6)
            XCTAssertEqual(measured.maxNorm!, separate.maxNorm!, accuracy: 1e-5)
        }
    }
}
