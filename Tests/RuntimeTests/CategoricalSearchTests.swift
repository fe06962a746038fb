import Foundation
import XCTest
@testable import Runtime
import TestSupport

/// The float32 threshold search the ONNX export builds gives, for every float32 input, the
/// runtime's own interval lookup: every boundary ±64 ulps, special values, random floats.
final class CategoricalSearchTests: XCTestCase {
    /// The synthetic vocabulary of `CategoricalLookupTests` without "nan" and "-nan" (a search
    /// cannot read a NaN's sign, so both must have one index: here out of vocabulary).
    static let keys = CategoricalLookupTests.syntheticKeys.filter { $0 != "-nan" && $0 != "nan" }

    static func column(_ keys: [String], f32: Bool) -> (CategoricalColumn, Tensor, Tensor) {
        let bytes: [UInt8] = keys.flatMap { key -> [UInt8] in Array(key.utf8) + [0] }
        return (CategoricalColumn(column: 0, keys: "k", values: "v", oovIndex: 0, keyDType: f32 ? .f32 : nil),
                Tensor(name: "k", shape: [bytes.count], bytes: bytes),
                Tensor(name: "v", shape: [keys.count], int64s: keys.indices.map { Int64($0 + 1) }))
    }

    func check(_ search: CategoricalSearch, against lookup: CategoricalLookup, _ name: String) {
        XCTAssertEqual(search.thresholds, search.thresholds.sorted(), name)
        XCTAssertEqual(Set(search.thresholds).count, search.thresholds.count, "\(name): thresholds strictly increase")
        XCTAssertFalse(search.thresholds.contains { $0.isNaN || ($0 == 0 && $0.sign == .minus) }, name)
        var inputs: [Float] = [.nan, -.nan, .infinity, -.infinity, 0, -0, .leastNonzeroMagnitude, -.leastNonzeroMagnitude,
                               .greatestFiniteMagnitude, -.greatestFiniteMagnitude, 5e-7, -5e-7, 1.0 / 128, 0.5625, -0.5625]
        for t in search.thresholds where t.isFinite {
            var below = t, above = t
            for _ in 0..<64 { below = below.nextDown; above = above.nextUp; inputs += [below, above] }
            inputs.append(t)
        }
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<100_000 { inputs.append(Float(bitPattern: generator.next())) }
        for _ in 0..<100_000 { inputs.append(Float.random(in: -2...2, using: &generator)) }
        var mismatches: [String] = []
        for x in inputs where search.value(of: x) != lookup.value(of: Double(x)) {
            mismatches.append("\(x) (bits \(String(x.bitPattern, radix: 16))): search \(search.value(of: x)), runtime \(lookup.value(of: Double(x)))")
            if mismatches.count >= 5 { break }
        }
        XCTAssertEqual(mismatches, [], name)
    }

    func testSyntheticVocabularyBothKeyTypes() throws {
        for f32 in [false, true] {
            let (column, keys, values) = Self.column(Self.keys, f32: f32)
            let search = try CategoricalSearch.build(column, keys: keys, values: values)
            let lookup = try Scorer.vocabulary(column, keys: keys, values: values)
            XCTAssertEqual(search.negativeZero, Float(Self.keys.firstIndex(of: "-0.000000")! + 1), "-0 keeps its own key")
            XCTAssertEqual(search.nan, 0, "NaN is out of vocabulary")
            check(search, against: lookup, "synthetic, f32 \(f32)")
        }
    }

    func testShippedVocabularies() throws {
        let shipped = try CategoricalLookupTests.shippedLookups()
        XCTAssertEqual(shipped.count, 8, "the categorical columns of both autokeras heads (3 + 5)")
        for (name, lookup, table) in shipped {
            let keys = table.keys.sorted()
            let bytes: [UInt8] = keys.flatMap { key -> [UInt8] in Array(key.utf8) + [0] }
            let column = CategoricalColumn(column: lookup.column, keys: "k", values: "v", oovIndex: Int64(lookup.oov), keyDType: .f32)
            let search = try CategoricalSearch.build(column, keys: Tensor(name: "k", shape: [bytes.count], bytes: bytes),
                                                     values: Tensor(name: "v", shape: [keys.count], int64s: keys.map { Int64(table[$0]!) }))
            XCTAssertGreaterThan(search.thresholds.count, keys.count, name)
            check(search, against: lookup, name)
        }
    }

    func testNaNKeysOfDifferentIndicesAreRefused() {
        for vocabulary in [["nan", "-nan", "1.000000"], ["nan", "1.000000"]] {
            let (column, keys, values) = Self.column(vocabulary, f32: false)
            XCTAssertThrowsError(try CategoricalSearch.build(column, keys: keys, values: values)) { error in
                XCTAssertEqual((error as? ClipSafetyError)?.kind, .unsupported)
                XCTAssertTrue("\(error)".contains("'nan' and '-nan'"), "\(error)")
            }
        }
    }

    func testAVocabularyOfNoReachableKeyMapsEverythingToOOV() throws {
        let (column, keys, values) = Self.column(["x", "1.0"], f32: true)
        let search = try CategoricalSearch.build(column, keys: keys, values: values)
        XCTAssertEqual(search.thresholds, [])
        XCTAssertEqual([Float(1), .nan, -0, .infinity].map(search.value(of:)), [0, 0, 0, 0])
    }
}
