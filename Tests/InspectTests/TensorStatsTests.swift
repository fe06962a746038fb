import Foundation
import XCTest
import Inspect
import Runtime

final class TensorStatsTests: XCTestCase {
    func testStatisticsOfKnownValues() {
        let s = TensorStats(Tensor(name: "t", shape: [4], floats: [1, 2, 3, 4]))
        XCTAssertEqual(s.count, 4)
        XCTAssertEqual(s.min, 1)
        XCTAssertEqual(s.max, 4)
        XCTAssertEqual(s.mean, 2.5)
        XCTAssertEqual(s.std!, (1.25 as Double).squareRoot(), accuracy: 1e-15)
        XCTAssertEqual(s.nan, 0)
        XCTAssertEqual(s.inf, 0)
    }

    func testNaNAndInfinityAreCountedApartFromTheStatistics() {
        let s = TensorStats(Tensor(name: "t", shape: [5], floats: [.nan, 2, .infinity, -.infinity, 4]))
        XCTAssertEqual(s.count, 5)
        XCTAssertEqual(s.nan, 1)
        XCTAssertEqual(s.inf, 2)
        XCTAssertEqual(s.min, 2)
        XCTAssertEqual(s.max, 4)
        XCTAssertEqual(s.mean, 3)
        XCTAssertEqual(s.std, 1)
    }

    func testAllNaNGivesNullStatistics() {
        let s = TensorStats(Tensor(name: "t", shape: [2], floats: [.nan, .nan]))
        XCTAssertNil(s.min)
        XCTAssertNil(s.mean)
        XCTAssertNil(s.std)
        XCTAssertEqual(s.nan, 2)
    }

    func testEmptyTensor() {
        let s = TensorStats(Tensor(name: "t", shape: [0], floats: []))
        XCTAssertEqual(s.count, 0)
        XCTAssertNil(s.max)
    }

    func testIntegerAndHalfDtypes() throws {
        XCTAssertEqual(TensorStats(Tensor(name: "i", shape: [3], int64s: [-5, 0, 11])).min, -5)
        XCTAssertEqual(TensorStats(Tensor(name: "u", shape: [3], bytes: [0, 255, 3])).max, 255)
        let half: [Float16] = [0.5, -1.5]
        let f16 = try Tensor(name: "h", dtype: .f16, shape: [2], data: half.withUnsafeBytes { Data($0) })
        XCTAssertEqual(TensorStats(f16).mean, -0.5)
        // bfloat16 1.0 is 0x3F80; -2.0 is 0xC000.
        let bf = try Tensor(name: "b", dtype: .bf16, shape: [2], data: Data([0x80, 0x3F, 0x00, 0xC0]))
        XCTAssertEqual(TensorStats(bf).min, -2)
        XCTAssertEqual(TensorStats(bf).max, 1)
    }

    func testOverflowingValuesGiveNullMeanNotInfinity() throws {
        let big: [Double] = [Double.greatestFiniteMagnitude, -Double.greatestFiniteMagnitude]
        let t = try Tensor(name: "d", dtype: .f64, shape: [2], data: big.withUnsafeBytes { Data($0) })
        let s = TensorStats(t)
        XCTAssertEqual(s.max, .greatestFiniteMagnitude)
        XCTAssertTrue(s.std == nil || s.std!.isFinite)
    }
}
