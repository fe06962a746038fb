import Foundation
import XCTest
@testable import Converters
import Runtime
import TestSupport

/// The Keras-family readers describe every layer and weight whatever its class; the Keras-chain
/// recogniser alone decides what runs.
final class KerasDescriptionTests: XCTestCase {
    private let conv = TestLayer(className: "Conv2D", name: "conv", config: ["filters": 2, "kernel_size": [3, 3]],
                                 weights: [("kernel", [3, 3, 1, 2], Array(repeating: 0.5, count: 18)), ("bias", [2], [0, 1])])
    private let lstm = TestLayer(className: "LSTM", name: "lstm", config: ["units": 2],
                                 weights: [("kernel", [2, 8], Array(repeating: 0.25, count: 16)), ("bias", [8], Array(repeating: 0, count: 8))])
    private let lambda = TestLayer(className: "Lambda", name: "fn",
                                   config: ["function": ["class_name": "__lambda__", "config": ["code": "4wEAAAAAAAAA"]]])

    private func convert(_ bytes: Data) throws -> NativeModel {
        try convertModel(bytes: bytes, options: ConversionOptions(fileName: "model"))
    }

    /// Layers, classes, inbound layers and weights of a described file with conv, lstm and fn.
    private func assertDescribesEveryLayer(_ d: FileDescription, file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertEqual(d.layers.map(\.name), ["embedding", "conv", "lstm", "fn"], file: file, line: line)
        XCTAssertEqual(d.layers.map(\.className), ["InputLayer", "Conv2D", "LSTM", "Lambda"], file: file, line: line)
        XCTAssertEqual(d.layers.map(\.inbound), [[], ["embedding"], ["conv"], ["lstm"]], file: file, line: line)
        XCTAssertEqual(d.chain, ["embedding", "conv", "lstm", "fn"], file: file, line: line)
        XCTAssertEqual(d.modelClass, "Functional", file: file, line: line)
        XCTAssertEqual(d.inputWidth, 2, file: file, line: line)
        XCTAssertEqual(d.layers[1].config["filters"]?.int, 2, file: file, line: line)
        XCTAssertEqual(d.layers[3].config["function"]?["class_name"]?.string, "__lambda__", "the code is kept as data", file: file, line: line)
        let weights = d.layers.map { $0.weights.compactMap { d.tensor($0)?.shape } }
        XCTAssertEqual(weights, [[], [[3, 3, 1, 2], [2]], [[2, 8], [8]], []], file: file, line: line)
        XCTAssertEqual(try d.tensor(d.layers[1].weights[1])?.read().floatValues(), [0, 1], file: file, line: line)
        XCTAssertEqual(Set(d.tensors.map(\.dtype)), ["F32"], file: file, line: line)
    }

    func testH5WithConv2DLSTMAndLambdaIsDescribedButRefusedByConvert() throws {
        let bytes = try KerasFixture.legacyH5([conv, lstm, lambda], width: 2)
        try assertDescribesEveryLayer(try FormatRegistry.describe(bytes, limits: ReaderLimits()))
        assertClipSafetyError([.unsafe], containing: "'fn' (Lambda)") { try self.convert(bytes) }
        assertClipSafetyError([.unsupported], containing: "'conv' (Conv2D)") {
            try self.convert(try KerasFixture.legacyH5([self.conv, self.lstm], width: 2))
        }
        assertClipSafetyError([.unsupported], containing: "'lstm' (LSTM)") {
            try self.convert(try KerasFixture.legacyH5([self.lstm], width: 2))
        }
    }

    func testKerasV3WithConv2DLSTMAndLambdaIsDescribedButRefusedByConvert() throws {
        let bytes = try KerasFixture.keras([conv, lstm, lambda], width: 2)
        let d = try FormatRegistry.describe(bytes, limits: ReaderLimits())
        try assertDescribesEveryLayer(d)
        XCTAssertEqual(d.layers[2].weights, ["layers/lstm/vars/0", "layers/lstm/vars/1"], "weights found by tracking name")
        assertClipSafetyError([.unsafe], containing: "'fn' (Lambda)") { try self.convert(bytes) }
        assertClipSafetyError([.unsupported], containing: "'conv' (Conv2D)") {
            try self.convert(try KerasFixture.keras([self.conv], width: 2))
        }
    }

    func testAModelThatIsNotOneChainIsDescribedWithItsProblem() throws {
        var config = KerasFixture.config([.dense("a", inputs: 2, units: 2)], width: 2)
        var body = config["config"] as! [String: Any]
        body["output_layers"] = [["embedding", 0, 0], ["a", 0, 0]]
        config["config"] = body
        let bytes = try KerasFixture.legacyH5([.dense("a", inputs: 2, units: 2)], width: 2, config: config)
        let d = try FormatRegistry.describe(bytes, limits: ReaderLimits())
        XCTAssertEqual(d.layers.map(\.name), ["embedding", "a"])
        XCTAssertNil(d.chain)
        XCTAssertTrue(d.chainProblem?.contains("2 outputs") == true, "\(d.chainProblem ?? "nil")")
        assertClipSafetyError([.unsupported], containing: "2 outputs") { try self.convert(bytes) }
    }

    /// The shipped Keras and SavedModel files: name, input width, Dense widths.
    private let shipped: [(file: String, width: Int, dense: [Int])] = [
        ("clip_autokeras_nsfw_b32_dense.h5", 512, [32, 32, 1]),
        ("clip_autokeras_nsfw_b32_dense.keras", 512, [32, 32, 1]),
        ("clip_autokeras_binary_nsfw_dense.h5", 768, [64, 512, 256, 1]),
        ("clip_autokeras_binary_nsfw_dense.keras", 768, [64, 512, 256, 1]),
        ("clip_autokeras_nsfw_b32.zip", 512, [32, 32, 1]),
        ("clip_autokeras_binary_nsfw.zip", 768, [64, 512, 256, 1]),
    ]

    func testEveryShippedKerasFileDescribesItsLayersAndWeights() throws {
        for s in shipped {
            let bytes = try Data(contentsOf: URL(fileURLWithPath: try Fixtures.modelFile(s.file)))
            let d = try FormatRegistry.describe(bytes, limits: ReaderLimits())
            XCTAssertEqual(d.chain, d.layers.map(\.name), s.file)
            XCTAssertEqual(d.inputWidth, s.width, s.file)
            XCTAssertEqual(d.layers.first?.className, "InputLayer", s.file)
            let dense = d.layers.filter { $0.className == "Dense" }
            XCTAssertEqual(dense.compactMap { $0.config["units"]?.int }, s.dense, s.file)
            XCTAssertEqual(dense.map { $0.weights.compactMap { d.tensor($0)?.shape.last } }, s.dense.map { [$0, $0] }, s.file)
            let norm = try XCTUnwrap(d.layers.first { $0.className == "Normalization" }, s.file)
            XCTAssertEqual(norm.weights.count, 3, "\(s.file): mean, variance, count")
            XCTAssertEqual(try d.tensor(norm.weights[0])?.read().elementCount, s.width, s.file)
            for layer in d.layers { for w in layer.weights { XCTAssertNotNil(d.tensor(w), "\(s.file): \(w)") } }
            XCTAssertFalse(d.notes.isEmpty, s.file)
        }
    }

    func testShippedSavedModelsDescribeTheirSignatureLookupsAndEveryVariable() throws {
        for (file, columns) in [("clip_autokeras_nsfw_b32.zip", [92, 133, 312]), ("clip_autokeras_binary_nsfw.zip", [180, 316, 413, 440, 644])] {
            let bytes = try Data(contentsOf: URL(fileURLWithPath: try Fixtures.modelFile(file)))
            let d = try FormatRegistry.describe(bytes, limits: ReaderLimits())
            XCTAssertEqual(d.signatures.map(\.key), ["serving_default"], file)
            XCTAssertEqual(d.lookups.map(\.column), columns, file)
            XCTAssertEqual(d.layers[1].className, "Custom>MultiCategoryEncoding", file)
            XCTAssertEqual(d.tensor("_CHECKPOINTABLE_OBJECT_GRAPH")?.dtype, "string", "non-numeric entries are listed too")
            let kernel = try XCTUnwrap(d.layers.first { $0.className == "Dense" }?.weights.first, file)
            XCTAssertTrue(kernel.hasSuffix("/kernel/.ATTRIBUTES/VARIABLE_VALUE"), "kernel first, as Keras creates it: \(kernel)")
        }
    }
}
