import XCTest
@testable import Runtime

final class InputStatisticsTests: XCTestCase {
    func stats(_ values: [Float], columns: Int) -> InputStatistics {
        values.withUnsafeBytes { InputStatistics(EmbeddingBatch(base: $0.baseAddress!, rows: values.count / columns, columns: columns, elementType: .float32)) }
    }

    func testCountsOffNormAndNonFiniteRows() {
        let s = stats([1, 0, 0.6, 0.8, 3, 4, .nan, 1, 0.999, 0], columns: 2)
        XCTAssertEqual(s.rows, 5)
        XCTAssertEqual(s.nonFiniteRows, 1)
        XCTAssertEqual(s.offNormRows, 1, "only the norm-5 row; 0.999 is inside the tolerance")
        XCTAssertEqual(s.minNorm!, 0.999, accuracy: 1e-6)
        XCTAssertEqual(s.maxNorm!, 5, accuracy: 1e-6)
        XCTAssertNotNil(s.warning(precondition: "l2-normalized"))
        XCTAssertEqual(s.warning(precondition: "none"), "1 of 5 rows hold NaN or infinity")
    }

    func testAllFiniteBatchesTakeTheBitPatternPathWithTheSameAnswers() {
        // No NaN or ∞: counted from the sums' bit patterns. The same rows with a NaN row added
        // take the row-by-row path and must agree on everything else.
        let rows: [Float] = [0, 0, 0.6, 0.8, 3, 4, 0.8, 0.6]
        let fast = stats(rows, columns: 2)
        let slow = stats(rows + [.nan, 1], columns: 2)
        XCTAssertEqual(fast.offNormRows, 2, "the zero row and the norm-5 row")
        XCTAssertEqual(fast.minNorm, 0)
        XCTAssertEqual(fast.maxNorm!, 5, accuracy: 1e-6)
        XCTAssertEqual(slow.nonFiniteRows, 1)
        XCTAssertEqual(slow.offNormRows, fast.offNormRows)
        XCTAssertEqual(slow.minNorm, fast.minNorm)
        XCTAssertEqual(slow.maxNorm, fast.maxNorm)
    }

    func testToleranceBoundsAreOnTheNormNotItsSquare() {
        // Norms 1.009 and 0.991 are inside 1 ± 0.01; 1.011 and 0.989 are outside.
        let s = stats([1.009, 0, 0.991, 0, 1.011, 0, 0.989, 0], columns: 2)
        XCTAssertEqual(s.offNormRows, 2)
        XCTAssertEqual(s.minNorm!, 0.989, accuracy: 1e-6)
        XCTAssertEqual(s.maxNorm!, 1.011, accuracy: 1e-6)
    }

    func testHugeFiniteValuesAreOffNormNotNonFinite() {
        let s = stats([3e20, 0, 0.6, 0.8], columns: 2)
        XCTAssertEqual(s.nonFiniteRows, 0)
        XCTAssertEqual(s.offNormRows, 1)
        XCTAssertEqual(s.maxNorm, .infinity)
    }

    func testMergeAddsCountsAndWidensRange() {
        var a = stats([1, 0], columns: 2)
        a.merge(stats([0, 2], columns: 2))
        XCTAssertEqual(a.rows, 2)
        XCTAssertEqual(a.offNormRows, 1)
        XCTAssertEqual(a.minNorm, 1)
        XCTAssertEqual(a.maxNorm, 2)
        XCTAssertNil(stats([0.6, 0.8], columns: 2).warning(precondition: "l2-normalized"))
    }

    func testNormalizedBatchDividesByTheNormAndKeepsZeroRows() {
        let values: [Float16] = [3, 4, 0, 0]
        let n = values.withUnsafeBytes { NormalizedBatch(EmbeddingBatch(base: $0.baseAddress!, rows: 2, columns: 2, elementType: .float16)) }
        XCTAssertEqual(n.batch.value(row: 0, column: 0), 0.6, accuracy: 1e-12)
        XCTAssertEqual(n.batch.value(row: 0, column: 1), 0.8, accuracy: 1e-12)
        XCTAssertEqual(n.batch.value(row: 1, column: 0), 0)
    }
}

final class HalfWideningTests: XCTestCase {
    static let halves = (0...UInt16.max).map { $0 }

    /// Mismatches against Swift's own Float16 → Float; NaNs must stay NaN with their sign
    /// (the hardware conversion may set the quiet bit of a signalling NaN).
    func mismatches(_ out: [Float]) -> Int {
        var count = 0
        for (h, f) in zip(Self.halves, out) {
            let expected = Float(Float16(bitPattern: h))
            if expected.isNaN {
                if !f.isNaN || f.sign != expected.sign { count += 1 }
            } else if f.bitPattern != expected.bitPattern {
                count += 1
            }
        }
        return count
    }

    func testEveryFloat16BitPatternWidensExactly() {
        var out = [Float](repeating: 0, count: Self.halves.count)
        Self.halves.withUnsafeBytes { raw in
            EmbeddingBatch(base: raw.baseAddress!, rows: 1, columns: Self.halves.count, elementType: .float16).copyAsFloat32(into: &out)
        }
        XCTAssertEqual(mismatches(out), 0)
        XCTAssertEqual(out[0x3C00], 1)
        XCTAssertEqual(out[0x0001], 0x1p-24)
        XCTAssertEqual(out[0x8000].bitPattern, (-0.0 as Float).bitPattern)
        XCTAssertEqual(out[0x7C00], .infinity)
        // Tails after the eight-wide steps, on whichever path this CPU takes.
        for count in 0..<20 {
            var short = [Float](repeating: -1, count: count + 1)
            Self.halves.withUnsafeBufferPointer { EmbeddingBatch.widenHalves($0.baseAddress! + 0x3C00, into: &short, count: count) }
            XCTAssertEqual(Array(short.prefix(count)), Array(out[0x3C00..<(0x3C00 + count)]), "count \(count)")
            XCTAssertEqual(short[count], -1, "count \(count): nothing written past the end")
        }
    }

    func testPortableWideningIsExactAndKeepsNaNPayloads() {
        // The path used where the CPU has no F16C (and on this machine only by this test).
        var out = [Float](repeating: 0, count: Self.halves.count)
        Self.halves.withUnsafeBufferPointer { EmbeddingBatch.widenHalvesPortably($0.baseAddress!, into: &out, count: $0.count) }
        XCTAssertEqual(mismatches(out), 0)
        for h in Self.halves where Float16(bitPattern: h).isNaN {
            XCTAssertEqual(out[Int(h)].bitPattern, UInt32(h & 0x8000) << 16 | 0x7F80_0000 | UInt32(h & 0x3FF) << 13)
        }
        // Lengths that leave a tail of every size after the eight-wide steps.
        for count in 0..<20 {
            var short = [Float](repeating: -1, count: count + 1)
            Self.halves.withUnsafeBufferPointer { EmbeddingBatch.widenHalvesPortably($0.baseAddress! + 0x3C00, into: &short, count: count) }
            XCTAssertEqual(Array(short.prefix(count)), Array(out[0x3C00..<(0x3C00 + count)]), "count \(count)")
            XCTAssertEqual(short[count], -1, "count \(count): nothing written past the end")
        }
    }
}
