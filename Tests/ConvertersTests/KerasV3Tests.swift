import Converters
import Foundation
import Runtime
import TestSupport
import XCTest

final class KerasV3Tests: XCTestCase {
    func convert(_ bytes: Data, name: String = "model.keras", limits: ReaderLimits = .init()) throws -> NativeModel {
        try convertModel(bytes: bytes, options: ConversionOptions(fileName: name, limits: limits))
    }

    func modelBytes(_ name: String) throws -> Data {
        try Data(contentsOf: URL(fileURLWithPath: try Fixtures.modelFile(name)))
    }

    // MARK: the upstream dense exports

    func testConvertsBothDenseExportsLikeTheirH5Twins() throws {
        for e in KerasTestSupport.denseExports {
            let model = try convert(try modelBytes(e.stem + ".keras"), name: e.stem + ".keras")
            let twin = try convertModel(bytes: try modelBytes(e.stem + ".h5"), options: ConversionOptions(fileName: e.stem + ".h5"))
            XCTAssertEqual(model.graph, KerasTestSupport.expectedGraph(denseCount: e.units.count))
            XCTAssertEqual(model.graph, twin.graph)
            // The same weights, although the .keras file names its groups dense, dense_1, … and
            // the .h5 file dense_0, dense_1, …
            XCTAssertEqual(model.tensors.map(\.name).sorted(), twin.tensors.map(\.name).sorted())
            for t in model.tensors { XCTAssertEqual(t, twin.tensor(named: t.name), t.name) }
            var named = twin.card
            named.name = model.card.name
            XCTAssertEqual(model.card, named, "both files are catalogued with the same meaning")
            XCTAssertEqual(model.source.sourceFormat, "keras-v3")
            XCTAssertEqual(model.source.sha256, sha256Hex(try modelBytes(e.stem + ".keras")))
        }
    }

    func testDenseExportsReproduceTensorFlowOnTheSavedModelReference() throws {
        let b32 = try convert(try modelBytes("clip_autokeras_nsfw_b32_dense.keras"))
        try KerasTestSupport.assertReproducesSavedModel(b32, parent: "clip_autokeras_nsfw_b32", categorical: [92, 133, 312])
        let l14 = try convert(try modelBytes("clip_autokeras_binary_nsfw_dense.keras"))
        try KerasTestSupport.assertReproducesSavedModel(l14, parent: "clip_autokeras_binary_nsfw", categorical: [180, 316, 413, 440, 644])
    }

    // MARK: tracking names

    func testWeightGroupsAreFoundByTrackingNameNotLayerName() throws {
        // Layer names that share nothing with Keras' tracking names; distinct weights per layer,
        // so a wrong assignment changes the output.
        let layers = [TestLayer.normalization("scale_in", width: 3),
                      .dense("first", inputs: 3, units: 4, activation: "relu", seed: 1),
                      TestLayer(className: "Dropout", name: "drop_a", config: ["rate": 0.2]),
                      .dense("second", inputs: 4, units: 4, activation: "relu", seed: 2),
                      TestLayer(className: "ReLU", name: "clip", config: [:]),
                      TestLayer(className: "Dropout", name: "drop_b", config: ["rate": 0.2]),
                      .dense("third", inputs: 4, units: 2, seed: 3),
                      TestLayer(className: "Activation", name: "prob", config: ["activation": "sigmoid"])]
        XCTAssertEqual(KerasFixture.trackingNames(layers),
                       ["normalization", "dense", "dropout", "dense_1", "re_lu", "dropout_1", "dense_2", "activation"])
        let model = try convert(try KerasFixture.keras(layers, width: 3))
        XCTAssertEqual(model.graph.map(\.opName), ["normalize", "dense", "relu", "dense", "relu", "relu", "dense", "sigmoid"])
        let x = KerasFixture.rows(6, width: 3)
        KerasTestSupport.assertClose(try KerasTestSupport.score(model, x: x, rows: 6), KerasFixture.expected(layers, x: x, rows: 6, width: 3))
    }

    func testWorksWithoutVarsNameAttributes() throws {
        let layers = [TestLayer.dense("a", inputs: 2, units: 3, activation: "relu"), .dense("b", inputs: 3, units: 1, activation: "sigmoid", seed: 5)]
        let bytes = try KerasFixture.kerasArchive(config: KerasFixture.config(layers, width: 2),
                                                  weights: try KerasFixture.weightsH5(layers, nameAttributes: false))
        let x = KerasFixture.rows(3, width: 2)
        KerasTestSupport.assertClose(try KerasTestSupport.score(try convert(bytes), x: x, rows: 3), KerasFixture.expected(layers, x: x, rows: 3, width: 2))
    }

    func testReadsTheKeras2LayerCheckpointDependenciesPrefix() throws {
        let layers = [TestLayer.dense("a", inputs: 2, units: 2)]
        let bytes = try KerasFixture.kerasArchive(config: KerasFixture.config(layers, width: 2),
                                                  weights: try KerasFixture.weightsH5(layers, prefix: "_layer_checkpoint_dependencies"))
        XCTAssertEqual(try convert(bytes).graph, [.dense(weight: "linear_1.weight", bias: "linear_1.bias")])
    }

    func testSequentialModel() throws {
        let layers = [TestLayer.normalization("n", width: 2), .dense("d", inputs: 2, units: 2, activation: "sigmoid")]
        let model = try convert(try KerasFixture.keras(layers, width: 2, style: .sequential))
        XCTAssertEqual(model.graph.map(\.opName), ["normalize", "dense", "sigmoid"])
    }

    func testFloat16AndFloat64Weights() throws {
        let layers = [TestLayer(className: "Dense", name: "d", config: ["units": 1, "activation": "linear"],
                                weights: [("kernel", [2, 1], [0.75, -3.5]), ("bias", [1], [0.25])])]
        for type in [HDF5TestWriter.FloatType.f16, .f64] {
            let model = try convert(try KerasFixture.keras(layers, width: 2, type: type))
            XCTAssertEqual(try model.tensor(named: "linear_1.weight")?.floatValues(), [0.75, -3.5], "\(type)")
            XCTAssertEqual(try model.tensor(named: "linear_1.bias")?.floatValues(), [0.25], "\(type)")
        }
    }

    // MARK: hostile and broken archives

    func testRejectsAVarsGroupThatBelongsToAnotherLayer() throws {
        let layers = [TestLayer.dense("a", inputs: 2, units: 2), .dense("b", inputs: 2, units: 2)]
        let bytes = try KerasFixture.kerasArchive(config: KerasFixture.config(layers, width: 2), weights: try KerasFixture.weightsH5(layers) { w in
            // dense_1 claims to be layer 'a'.
            try w.delete("/layers/dense_1/vars")
            try w.group("/layers/dense_1/vars")
            try w.strings("name", on: "/layers/dense_1/vars", ["a"], scalar: true)
            try w.floats("/layers/dense_1/vars/0", shape: [2, 2], [1, 2, 3, 4])
            try w.floats("/layers/dense_1/vars/1", shape: [2], [1, 2])
        })
        KerasTestSupport.assertThrows(.mismatch, containing: ["dense_1", "'a'", "'b'"]) { try self.convert(bytes) }
    }

    func testRejectsAMissingWeight() throws {
        let layers = [TestLayer.dense("a", inputs: 2, units: 2), .dense("b", inputs: 2, units: 1)]
        let bytes = try KerasFixture.keras(layers, width: 2) { try $0.delete("/layers/dense_1/vars/1") }
        KerasTestSupport.assertThrows(.mismatch, containing: ["'b'", "Dense", "1 weights"]) { try self.convert(bytes) }
        let none = try KerasFixture.keras(layers, width: 2) { try $0.delete("/layers/dense_1") }
        KerasTestSupport.assertThrows(.mismatch, containing: ["'b'", "layers/dense_1/vars"]) { try self.convert(none) }
    }

    func testRejectsAShapeThatDisagreesWithTheConfig() throws {
        var layer = TestLayer.dense("a", inputs: 2, units: 3)
        layer.config["units"] = 4
        KerasTestSupport.assertThrows(.mismatch, containing: ["'a'", "kernel", "[2, 3]"]) {
            try self.convert(try KerasFixture.keras([layer], width: 2))
        }
        let badBias = try KerasFixture.keras([.dense("a", inputs: 2, units: 3)], width: 2) { w in
            try w.delete("/layers/dense/vars/1")
            try w.floats("/layers/dense/vars/1", shape: [2], [1, 2])
        }
        KerasTestSupport.assertThrows(.mismatch, containing: ["'a'", "bias", "[2]"]) { try self.convert(badBias) }
    }

    func testRejectsALambdaLayerNamingIt() throws {
        let layers = [TestLayer.dense("a", inputs: 2, units: 2),
                      TestLayer(className: "Lambda", name: "run_me", config: ["function": ["class_name": "__lambda__", "config": ["code": "YQ=="]]])]
        KerasTestSupport.assertThrows(.unsafe, containing: ["'run_me'", "Lambda"]) {
            try self.convert(try KerasFixture.kerasArchive(config: KerasFixture.config(layers, width: 2), weights: try KerasFixture.weightsH5(layers)))
        }
    }

    func testRejectsAnArchiveWithoutWeightsOrConfig() throws {
        let layers = [TestLayer.dense("a", inputs: 2, units: 2)]
        KerasTestSupport.assertThrows(.malformed, containing: ["model.weights.h5"]) {
            try self.convert(try KerasFixture.kerasArchive(config: KerasFixture.config(layers, width: 2), weights: nil))
        }
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        try ZipArchive.write(members: [("model.weights.h5", try KerasFixture.weightsH5(layers))], to: dir.file("x.keras"))
        KerasTestSupport.assertThrows(.malformed, containing: ["config.json"]) {
            try self.convert(try Data(contentsOf: URL(fileURLWithPath: dir.file("x.keras"))))
        }
    }

    func testRejectsAWeightsMemberThatIsNotHDF5() throws {
        let layers = [TestLayer.dense("a", inputs: 2, units: 2)]
        let bytes = try KerasFixture.kerasArchive(config: KerasFixture.config(layers, width: 2), weights: Data("not hdf5 at all".utf8))
        XCTAssertThrowsError(try convert(bytes)) { error in
            XCTAssertTrue((error as? ClipSafetyError)?.message.hasPrefix("model.weights.h5:") ?? false, "\(error)")
        }
        let truncated = try KerasFixture.weightsH5(layers)
        let cut = try KerasFixture.kerasArchive(config: KerasFixture.config(layers, width: 2), weights: truncated.prefix(truncated.count / 2))
        XCTAssertThrowsError(try convert(cut))
    }

    func testRejectsBadMetadataAndConfigJSON() throws {
        let layers = [TestLayer.dense("a", inputs: 2, units: 2)]
        KerasTestSupport.assertThrows(.malformed, containing: ["metadata.json"]) {
            try self.convert(try KerasFixture.kerasArchive(config: KerasFixture.config(layers, width: 2), weights: try KerasFixture.weightsH5(layers), metadata: "[1"))
        }
        KerasTestSupport.assertThrows(.unsupported, containing: ["MyModel"]) {
            try self.convert(try KerasFixture.kerasArchive(config: ["class_name": "MyModel", "module": "keras.src.models", "config": ["layers": [Any]()]], weights: try KerasFixture.weightsH5([])))
        }
    }

    func testEveryPrefixOfAnArchiveThrowsWithoutTrapping() throws {
        let bytes = try KerasFixture.keras([.dense("a", inputs: 2, units: 1, activation: "sigmoid")], width: 2)
        XCTAssertNoThrow(try convert(bytes))
        for length in stride(from: 0, to: bytes.count, by: max(1, bytes.count / 200)) {
            XCTAssertThrowsError(try convert(bytes.prefix(length)), "prefix of \(length) bytes")
        }
    }
}
