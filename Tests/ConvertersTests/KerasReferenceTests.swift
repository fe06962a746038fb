import Foundation
import XCTest
@testable import Converters
import Runtime
import TestSupport

/// The four Keras exports against what Keras 3.15.1 (TensorFlow 2.21 backend) itself returns
/// after `keras.saving.load_model(file).predict(inputs)` — models/reference/*_dense.npz, made with
/// tools/make_reference.py (the mirror's own *_dense.npz were made with Normalization inactive).
final class KerasReferenceTests: XCTestCase {
    func check(_ file: String, reference: String, line: UInt = #line) throws {
        let path = try Fixtures.modelFile(file)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        let options = ConversionOptions(fileName: file)
        let model = file.hasSuffix(".h5") ? try convertModel(bytes: bytes, options: options)
                                          : try convertModel(bytes: bytes, options: options)
        let scorer = try Scorer(model: model)
        let ref = try NpzArchive.read(contentsOf: Fixtures.reference(reference))
        let inputs = try XCTUnwrap(ref["inputs"]), outputs = try XCTUnwrap(ref["outputs"]).floatValues()
        let result = try inputs.withRows(0, inputs.shape[0]) { try scorer.score($0) }
        let worst = zip(result.scores, outputs).map { abs($0 - $1) }.max() ?? .infinity
        XCTAssertLessThanOrEqual(worst, 2e-6, "\(file): max abs error \(worst)", line: line)
        XCTAssertEqual(result.scores.map { $0 > 0.5 }, outputs.map { $0 > 0.5 }, line: line)
    }

    func testAllFourExportsMatchKerasLoadModelWithin2e6() throws {
        try check("clip_autokeras_nsfw_b32_dense.h5", reference: "clip_autokeras_nsfw_b32_dense.npz")
        try check("clip_autokeras_nsfw_b32_dense.keras", reference: "clip_autokeras_nsfw_b32_dense.npz")
        try check("clip_autokeras_binary_nsfw_dense.h5", reference: "clip_autokeras_binary_nsfw_dense.npz")
        try check("clip_autokeras_binary_nsfw_dense.keras", reference: "clip_autokeras_binary_nsfw_dense.npz")
    }
}
