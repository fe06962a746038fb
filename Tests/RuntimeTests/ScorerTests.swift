import Foundation
import XCTest
@testable import Runtime
import TestSupport

final class ScorerTests: XCTestCase {
    func model(dim: Int, graph: [GraphOp], tensors: [Tensor], columns: [String]) -> NativeModel {
        NativeModel(
            card: ModelCard(name: "t", task: .regression, backbone: "test", embeddingDim: dim,
                            outputKind: .score, outputColumns: columns, labels: []),
            source: Provenance(originalFile: "t", sha256: "", sourceFormat: "hand-built"),
            graph: graph, tensors: tensors)
    }

    func testHandBuiltBinaryModelMatchesDoubleComputation() throws {
        let scorer = try Scorer(model: HandBuilt.binaryModel())
        let rows: [[Double]] = [[0.3, -0.1, 0.7, 0.2], [-1, 2, 0.5, 0.5], [0, 0, 0, 0]]
        let result = try scorer.score(rows.flatMap { $0.map(Float.init) }, rows: 3)
        XCTAssertEqual(result.columns, 1)
        for (i, row) in rows.enumerated() {
            XCTAssertEqual(Double(result.scores[i]), HandBuilt.expectedBinary(row.map { Double(Float($0)) }), accuracy: 1e-6)
        }
    }

    func testZeroVarianceColumnUsesEpsilonFloorNotInfinity() throws {
        // variance[2] == 0: Keras divides by max(0, 1e-7), so a value 1e-7 above the mean gives 1.
        let m = model(dim: 1, graph: [.normalize(mean: "m", variance: "v", denominator: .maxSqrtVarianceEpsilon, epsilon: 1e-7)],
                      tensors: [Tensor(name: "m", shape: [1], floats: [0]), Tensor(name: "v", shape: [1], floats: [0])], columns: ["x"])
        XCTAssertEqual(try Scorer(model: m).score([Float(1e-7)], rows: 1).scores[0], 1, accuracy: 1e-6)
        let torch = model(dim: 1, graph: [.normalize(mean: "m", variance: "v", denominator: .sqrtVariancePlusEpsilon, epsilon: 0.5)],
                          tensors: [Tensor(name: "m", shape: [1], floats: [1]), Tensor(name: "v", shape: [1], floats: [2.25])], columns: ["x"])
        XCTAssertEqual(try Scorer(model: torch).score([Float(5)], rows: 1).scores[0], 2, accuracy: 1e-6, "(5-1)/(1.5+0.5)")
    }

    func testDenseWithoutBiasReluAndSigmoid() throws {
        let m = model(dim: 2, graph: [.dense(weight: "w", bias: nil), .relu, .sigmoid],
                      tensors: [Tensor(name: "w", shape: [2, 2], floats: [1, 1, -1, 0])], columns: ["a", "b"])
        let r = try Scorer(model: m).score([Float(1), 2], rows: 1)
        XCTAssertEqual(r.scores[0], Float(1 / (1 + exp(-3.0))), accuracy: 1e-7)
        XCTAssertEqual(r.scores[1], 0.5, "relu(-1) = 0, sigmoid(0) = 0.5")
    }

    func testImputeNaNOnlyInListedColumns() throws {
        let m = model(dim: 3, graph: [.imputeNaN(columns: [0, 2], value: 7)], tensors: [], columns: ["a", "b", "c"])
        let r = try Scorer(model: m).score([Float.nan, .nan, .nan], rows: 1)
        XCTAssertEqual(r.scores[0], 7)
        XCTAssertTrue(r.scores[1].isNaN)
        XCTAssertEqual(r.scores[2], 7)
        let all = model(dim: 2, graph: [.imputeNaN(columns: nil, value: 0)], tensors: [], columns: ["a", "b"])
        XCTAssertEqual(try Scorer(model: all).score([Float.nan, 3], rows: 1).scores, [0, 3])
    }

    /// Most columns listed (as autokeras lists all but its categorical ones): the row is
    /// imputed 16 lanes at a time with the unlisted columns put back, the same values as
    /// column by column, in the lanes and in the tail past the last 16.
    func testImputeOfMostColumnsLeavesTheOthersAlone() throws {
        let width = 40, kept: Set<Int> = [1, 17, 33, 39]
        let m = model(dim: width, graph: [.imputeNaN(columns: (0..<width).filter { !kept.contains($0) }, value: -2)], tensors: [],
                      columns: (0..<width).map { "c\($0)" })
        let input: [Float] = (0..<(3 * width)).map { i in i % 3 == 0 ? .nan : Float(i) }
        let r = try Scorer(model: m).score(input, rows: 3)
        for (i, x) in input.enumerated() {
            if !x.isNaN { XCTAssertEqual(r.scores[i], x) } else if kept.contains(i % width) { XCTAssertTrue(r.scores[i].isNaN, "\(i)") } else { XCTAssertEqual(r.scores[i], -2, "\(i)") }
        }
    }

    func vocabularyModel() -> NativeModel {
        let keys = ["-0.562500", "0.125000", "nan"].flatMap { Array($0.utf8) + [UInt8(0)] }
        return model(dim: 2, graph: [.categoricalLookup([CategoricalColumn(column: 1, keys: "k", values: "v", oovIndex: 0)])],
                     tensors: [Tensor(name: "k", shape: [keys.count], bytes: keys), Tensor(name: "v", shape: [3], int64s: [5, 6, 9])],
                     columns: ["a", "b"])
    }

    func testCategoricalLookupUsesPercentFOfTheFloat64Input() throws {
        let scorer = try Scorer(model: vocabularyModel())
        // -0.5625 → "-0.562500" → 5; 0.125 → 6; 0.1250004 prints "0.125000" too → 6; 0.3 → OOV 0.
        let r = try scorer.score([Double(1), -0.5625, 1, 0.125, 1, 0.1250004, 1, 0.3], rows: 4)
        XCTAssertEqual(r.scores, [1, 5, 1, 6, 1, 6, 1, 0])
        // Column 0 is untouched; float16 input reaches the lookup exactly widened.
        let halves: [Float16] = [2, -0.5625]
        let h = try halves.withUnsafeBytes { try scorer.score(EmbeddingBatch(base: $0.baseAddress!, rows: 1, columns: 2, elementType: .float16)) }
        XCTAssertEqual(h.scores, [2, 5])
    }

    func testPercentFMatchesCPrintf() {
        XCTAssertEqual(percentF(-0.5625), "-0.562500")
        XCTAssertEqual(percentF(227), "227.000000")
        XCTAssertEqual(percentF(1e-7), "0.000000")
        XCTAssertEqual(percentF(-1e-7), "-0.000000")
        XCTAssertEqual(percentF(1e20), "100000000000000000000.000000")
    }

    func testPromptScoresAndArgmax() throws {
        let scorer = try Scorer(model: HandBuilt.promptModel())
        let r = try scorer.score([Float(1), 0, 0, 0, 1, 0, 0, 0, 0], rows: 3)
        XCTAssertEqual(r.scores, [1, 0, 0, 0.6, 0, 0])
        XCTAssertEqual(r.labels, [0, 1, 0], "ties go to the first index")
    }

    func testRefusesWrongInputWidthNamingBothNumbers() throws {
        let scorer = try Scorer(model: HandBuilt.binaryModel())
        XCTAssertThrowsError(try scorer.score([Float](repeating: 0, count: 5), rows: 1))
        let five = [Float](repeating: 0, count: 5)
        XCTAssertThrowsError(try five.withUnsafeBytes { try scorer.score(EmbeddingBatch(base: $0.baseAddress!, rows: 1, columns: 5, elementType: .float32)) }) { error in
            let message = (error as? ClipSafetyError)?.message ?? ""
            XCTAssertTrue(message.contains("5") && message.contains("4"), message)
        }
    }

    func assertInvalid(_ m: NativeModel, _ text: String, line: UInt = #line) {
        XCTAssertThrowsError(try Scorer(model: m), line: line) { error in
            guard let e = error as? ClipSafetyError else { return XCTFail("\(error)", line: line) }
            XCTAssertEqual(e.kind, .mismatch, line: line)
            XCTAssertTrue(e.message.contains(text), "'\(e.message)' lacks '\(text)'", line: line)
        }
    }

    func testValidationRefusesMissingTensor() {
        var m = HandBuilt.binaryModel()
        m.tensors.removeAll { $0.name == "linear_2.weight" }
        assertInvalid(m, "linear_2.weight")
    }

    func testValidationRefusesBrokenShapeChain() {
        var m = HandBuilt.binaryModel()
        m.tensors[4] = Tensor(name: "linear_2.weight", shape: [1, 2], floats: [1, 1])
        assertInvalid(m, "expected [out, 3]")
    }

    func testValidationRefusesWrongBiasLength() {
        var m = HandBuilt.binaryModel()
        m.tensors[3] = Tensor(name: "linear_1.bias", shape: [2], floats: [1, 1])
        assertInvalid(m, "bias")
    }

    func testValidationRefusesArgmaxBeforeTheEnd() {
        var m = HandBuilt.promptModel()
        m.graph = [.promptScores(prompts: "prompts"), .argmax, .relu]
        assertInvalid(m, "last op")
    }

    func testValidationRefusesLookupAfterDense() {
        var m = vocabularyModel()
        m.tensors.append(Tensor(name: "w", shape: [2, 2], floats: [1, 0, 0, 1]))
        m.graph.insert(.dense(weight: "w", bias: nil), at: 0)
        assertInvalid(m, "before any dense")
    }

    func testValidationRefusesIntegerWeights() {
        var m = HandBuilt.promptModel()
        m.tensors = [Tensor(name: "prompts", shape: [2, 3], int64s: [1, 0, 0, 0, 1, 0])]
        assertInvalid(m, "not floating point")
    }

    func testValidationRefusesCardColumnCountMismatch() {
        var m = HandBuilt.binaryModel()
        m.card.outputColumns = ["a", "b"]
        assertInvalid(m, "output columns")
    }

    func testValidationRefusesDuplicateVocabularyKeys() {
        var m = vocabularyModel()
        let keys = ["a", "a", "b"].flatMap { Array($0.utf8) + [UInt8(0)] }
        m.tensors[0] = Tensor(name: "k", shape: [keys.count], bytes: keys)
        assertInvalid(m, "twice")
    }

    func testFloat16WeightsAreWidened() throws {
        let half = try Tensor(name: "prompts", dtype: .f16, shape: [2, 3], data: [Float16]([1, 0, 0, 0, 0.5, 0.25]).withUnsafeBytes { Data($0) })
        var m = HandBuilt.promptModel()
        m.tensors = [half]
        XCTAssertEqual(try Scorer(model: m).score([Float(2), 4, 8], rows: 1).scores, [2, 4])
    }

    func testLargeBatchesGiveTheSameRowsAsSmallBatches() throws {
        let n = 40_000
        let values = (0..<(n * 4)).map { Float(($0 * 7919) % 1000) / 500 - 1 }
        let scorer = try Scorer(model: HandBuilt.binaryModel())
        let whole = try scorer.score(values, rows: n)
        let head = try scorer.score(Array(values[0..<(1000 * 4)]), rows: 1000)
        let tail = try scorer.score(Array(values[((n - 1000) * 4)...]), rows: 1000)
        XCTAssertEqual(whole.rows, n)
        XCTAssertEqual(Array(whole.scores[0..<1000]), head.scores)
        XCTAssertEqual(Array(whole.scores[(n - 1000)...]), tail.scores)
        let prompts = try Scorer(model: HandBuilt.promptModel())
        let threeWide = Array(values[0..<(45_000 * 3)])
        let p = try prompts.score(threeWide, rows: 45_000)
        XCTAssertEqual(p.labels?.count, 45_000)
        XCTAssertEqual(p.scores.count, 90_000)
        let lastRow = try prompts.score(Array(threeWide[(44_999 * 3)...]), rows: 1)
        XCTAssertEqual(p.labels?.last, lastRow.labels?.first)
        XCTAssertEqual(Array(p.scores.suffix(2)), lastRow.scores)
    }

    func testEmptyBatchGivesEmptyResult() throws {
        let r = try Scorer(model: HandBuilt.promptModel()).score([Float](), rows: 0)
        XCTAssertEqual(r.rows, 0)
        XCTAssertEqual(r.labels, [])
    }
}
