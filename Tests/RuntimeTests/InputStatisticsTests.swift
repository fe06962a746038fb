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
    func testEveryFloat16BitPatternWidensExactly() {
        let halves = (0...UInt16.max).map { $0 }
        var out = [Float](repeating: 0, count: halves.count)
        halves.withUnsafeBytes { raw in
            EmbeddingBatch(base: raw.baseAddress!, rows: 1, columns: halves.count, elementType: .float16).copyAsFloat32(into: &out)
        }
        var mismatches = 0
        for (h, f) in zip(halves, out) {
            let expected = Float(Float16(bitPattern: h))
            if expected.isNaN {
                // NaN payload and sign are kept, as the hardware conversion does.
                if !f.isNaN || f.bitPattern != (UInt32(h & 0x8000) << 16 | 0x7F80_0000 | UInt32(h & 0x3FF) << 13) { mismatches += 1 }
            } else if f.bitPattern != expected.bitPattern {
                mismatches += 1
            }
        }
        XCTAssertEqual(mismatches, 0)
        XCTAssertEqual(out[0x3C00], 1)
        XCTAssertEqual(out[0x0001], 0x1p-24)
        XCTAssertEqual(out[0x8000].bitPattern, (-0.0 as Float).bitPattern)
        XCTAssertEqual(out[0x7C00], .infinity)
    }
}
