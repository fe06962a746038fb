import Converters
import Foundation
import Runtime
import TestSupport
import XCTest

/// Shared checks for both Keras converters.
enum KerasTestSupport {
    /// Converts, builds a Scorer and returns its outputs on `x`.
    static func score(_ model: NativeModel, x: [Double], rows: Int) throws -> [Float] {
        let scorer = try Scorer(model: model)
        return try scorer.score(x.map { Float($0) }, rows: rows).scores
    }

    static func assertClose(_ ours: [Float], _ expected: [Double], tolerance: Double = 1e-5, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(ours.count, expected.count, "output count", file: file, line: line)
        let worst = zip(ours, expected).map { abs(Double($0) - $1) }.max() ?? 0
        XCTAssertLessThanOrEqual(worst, tolerance, "max abs error", file: file, line: line)
    }

    static func assertThrows(_ kind: ClipSafetyError.Kind, containing parts: [String], file: StaticString = #filePath, line: UInt = #line,
                             _ body: () throws -> Any) {
        do {
            _ = try body()
            XCTFail("expected a \(kind) error", file: file, line: line)
        } catch let e as ClipSafetyError {
            XCTAssertEqual(e.kind, kind, e.message, file: file, line: line)
            for p in parts { XCTAssertTrue(e.message.contains(p), "'\(e.message)' should mention '\(p)'", file: file, line: line) }
            XCTAssertFalse(e.message.contains("\n"), "one-line message", file: file, line: line)
        } catch {
            XCTFail("unexpected error \(error)", file: file, line: line)
        }
    }

    /// The upstream heads' dense exports: file stem, catalog parent, widths of the Dense layers.
    static let denseExports: [(stem: String, parent: String, width: Int, units: [Int])] = [
        ("clip_autokeras_nsfw_b32_dense", "clip_autokeras_nsfw_b32", 512, [32, 32, 1]),
        ("clip_autokeras_binary_nsfw_dense", "clip_autokeras_binary_nsfw", 768, [64, 512, 256, 1]),
    ]

    /// The graph every dense export must give: normalize, then Dense/ReLU …, Dense, sigmoid.
    static func expectedGraph(denseCount: Int) -> [GraphOp] {
        var ops: [GraphOp] = [.normalize(mean: "norm.mean", variance: "norm.variance", denominator: .maxSqrtVarianceEpsilon, epsilon: 1e-7)]
        for i in 1...denseCount {
            ops.append(.dense(weight: "linear_\(i).weight", bias: "linear_\(i).bias"))
            ops.append(i == denseCount ? .sigmoid : .relu)
        }
        return ops
    }

    /// Checks a converted dense export against TensorFlow's outputs for the upstream SavedModel
    /// (`reference/<parent>.npz`) on its random rows. The dense export lacks the categorical
    /// encoding, so its categorical columns are set to 0 (what an out-of-vocabulary value
    /// becomes in TF). A row may then differ only if one of its values is a vocabulary key,
    /// which the test confirms by finding the key in the SavedModel's graph.
    static func assertReproducesSavedModel(_ model: NativeModel, parent: String, categorical: [Int],
                                           file: StaticString = #filePath, line: UInt = #line) throws {
        let ref = try NpzArchive.read(contentsOf: Fixtures.reference(parent + ".npz"))
        guard let inputs = ref["inputs"], let outputs = ref["outputs"] else { return XCTFail("reference lacks arrays", file: file, line: line) }
        let rows = inputs.shape[0] / 2, width = inputs.shape[1]
        let raw = try NpyArray(bytes: inputs.serialized())
        let doubles = raw.data.withUnsafeBytes { p in (0..<(rows * width)).map { Double(bitPattern: UInt64(littleEndian: p.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self))) } }
        var x = doubles
        for r in 0..<rows { for c in categorical { x[r * width + c] = 0 } }
        let ours = try score(model, x: x, rows: rows)
        let expected = outputs.floatValues()
        let graph = try ZipArchive(bytes: try Data(contentsOf: URL(fileURLWithPath: try Fixtures.modelFile(parent + ".zip"))))
        guard let pb = graph.entries.first(where: { $0.name.hasSuffix("saved_model.pb") }) else { return XCTFail("no saved_model.pb", file: file, line: line) }
        let pbBytes = try graph.read(pb)
        var close = 0
        for r in 0..<rows {
            let err = abs(Double(ours[r]) - Double(expected[r]))
            if err <= 2e-6 { close += 1; continue }
            let keys = categorical.map { String(format: "%f", doubles[r * width + $0]) }
            XCTAssertTrue(keys.contains { pbBytes.range(of: Data($0.utf8)) != nil },
                          "row \(r) differs by \(err) but none of its categorical values \(keys) is a vocabulary key", file: file, line: line)
            XCTAssertLessThan(err, 1e-3, "row \(r)", file: file, line: line)
        }
        XCTAssertGreaterThanOrEqual(close, rows - 2, "rows within 2e-6 of TensorFlow", file: file, line: line)
    }
}

final class KerasH5Tests: XCTestCase {
    func convert(_ bytes: Data, name: String = "model.h5", limits: ReaderLimits = .init()) throws -> NativeModel {
        try convertModel(bytes: bytes, options: ConversionOptions(fileName: name, limits: limits))
    }

    // MARK: the upstream dense exports

    func testConvertsBothDenseExportsToTheDocumentedGraphAndNames() throws {
        for e in KerasTestSupport.denseExports {
            let path = try Fixtures.modelFile(e.stem + ".h5")
            let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
            let model = try convert(bytes, name: "renamed.h5")
            XCTAssertEqual(model.graph, KerasTestSupport.expectedGraph(denseCount: e.units.count))
            XCTAssertEqual(model.tensor(named: "norm.mean")?.elementCount, e.width)
            var inputs = e.width
            for (i, units) in e.units.enumerated() {
                XCTAssertEqual(model.tensor(named: "linear_\(i + 1).weight")?.shape, [units, inputs], "\(e.stem) linear_\(i + 1)")
                XCTAssertEqual(model.tensor(named: "linear_\(i + 1).bias")?.shape, [units])
                inputs = units
            }
            // Renamed, it keeps its catalog card: the catalog knows it by its bytes.
            let known = try XCTUnwrap(Catalog.lookup(sha256: sha256Hex(bytes)))
            XCTAssertEqual(model.card, known.card)
            XCTAssertEqual(model.card.embeddingDim, e.width)
            XCTAssertEqual(model.card.threshold, 0.5)
            XCTAssertEqual(model.source.sourceFormat, "keras-h5")
            XCTAssertEqual(model.source.originalFile, "renamed.h5")
            _ = try Scorer(model: model)
        }
    }

    func testDenseExportsReproduceTensorFlowOnTheSavedModelReference() throws {
        let b32 = try convert(try Data(contentsOf: URL(fileURLWithPath: try Fixtures.modelFile("clip_autokeras_nsfw_b32_dense.h5"))))
        try KerasTestSupport.assertReproducesSavedModel(b32, parent: "clip_autokeras_nsfw_b32", categorical: [92, 133, 312])
        let l14 = try convert(try Data(contentsOf: URL(fileURLWithPath: try Fixtures.modelFile("clip_autokeras_binary_nsfw_dense.h5"))))
        try KerasTestSupport.assertReproducesSavedModel(l14, parent: "clip_autokeras_binary_nsfw", categorical: [180, 316, 413, 440, 644])
    }

    func testConversionIsDeterministic() throws {
        let bytes = try Data(contentsOf: URL(fileURLWithPath: try Fixtures.modelFile("clip_autokeras_nsfw_b32_dense.h5")))
        XCTAssertEqual(try convert(bytes).serialized(), try convert(bytes).serialized())
    }

    // MARK: layer mixes

    func testFunctionalNormalizationDenseReLUDropoutSigmoid() throws {
        let layers = [TestLayer.normalization("norm", width: 4),
                      .dense("d0", inputs: 4, units: 3, activation: "relu"),
                      TestLayer(className: "Dropout", name: "drop", config: ["rate": 0.5]),
                      .dense("d1", inputs: 3, units: 1, activation: "sigmoid", seed: 2)]
        let model = try convert(try KerasFixture.legacyH5(layers, width: 4))
        XCTAssertEqual(model.graph.map(\.opName), ["normalize", "dense", "relu", "dense", "sigmoid"])
        XCTAssertEqual(model.card.outputKind, .probability)
        XCTAssertEqual(model.card.outputRange, [0, 1])
        XCTAssertEqual(model.card.backbone, "unknown")
        let x = KerasFixture.rows(5, width: 4)
        KerasTestSupport.assertClose(try KerasTestSupport.score(model, x: x, rows: 5), KerasFixture.expected(layers, x: x, rows: 5, width: 4))
    }

    func testSequentialWithReLUAndActivationLayersAndNoBias() throws {
        let layers = [TestLayer.dense("a", inputs: 3, units: 5, bias: false),
                      TestLayer(className: "ReLU", name: "r", config: ["max_value": NSNull(), "negative_slope": 0.0, "threshold": 0.0]),
                      .dense("b", inputs: 5, units: 2, seed: 3),
                      TestLayer(className: "Activation", name: "act", config: ["activation": "sigmoid"])]
        let model = try convert(try KerasFixture.legacyH5(layers, width: 3, style: .sequential))
        XCTAssertEqual(model.graph, [.dense(weight: "linear_1.weight", bias: nil), .relu,
                                     .dense(weight: "linear_2.weight", bias: "linear_2.bias"), .sigmoid])
        XCTAssertEqual(model.card.outputColumns, ["output_0", "output_1"])
        let x = KerasFixture.rows(4, width: 3)
        KerasTestSupport.assertClose(try KerasTestSupport.score(model, x: x, rows: 4), KerasFixture.expected(layers, x: x, rows: 4, width: 3))
    }

    func testLinearOutputGivesAnUnboundedUnknownCard() throws {
        let model = try convert(try KerasFixture.legacyH5([.dense("only", inputs: 2, units: 1)], width: 2))
        XCTAssertEqual(model.card.task, .unknown)
        XCTAssertEqual(model.card.outputKind, .score)
        XCTAssertNil(model.card.outputRange)
        XCTAssertEqual(model.card.outputColumns, ["output_0"])
    }

    func testNormalizationStatisticsFromTheConfig() throws {
        var norm = TestLayer(className: "Normalization", name: "n",
                             config: ["axis": -1, "mean": [0.5, -1.0, 2.0], "variance": [4.0, 0.25, 1.0]])
        let layers = [norm, .dense("d", inputs: 3, units: 2)]
        let model = try convert(try KerasFixture.legacyH5(layers, width: 3))
        XCTAssertEqual(try model.tensor(named: "norm.mean")?.floatValues(), [0.5, -1, 2])
        let x = KerasFixture.rows(3, width: 3)
        KerasTestSupport.assertClose(try KerasTestSupport.score(model, x: x, rows: 3), KerasFixture.expected(layers, x: x, rows: 3, width: 3))

        // A scalar mean and variance apply to every column.
        norm.config = ["axis": [-1], "mean": 1.5, "variance": 9.0]
        let scalar = try convert(try KerasFixture.legacyH5([norm, .dense("d", inputs: 3, units: 2)], width: 3))
        XCTAssertEqual(try scalar.tensor(named: "norm.variance")?.floatValues(), [9, 9, 9])
    }

    func testFloat16WeightsAreWidenedExactly() throws {
        let layer = TestLayer(className: "Dense", name: "h", config: ["units": 2, "activation": "linear"],
                              weights: [("kernel", [2, 2], [0.5, -1.25, 2.0, 0.099975586]), ("bias", [2], [-0.125, 65504])])
        let model = try convert(try KerasFixture.legacyH5([layer], width: 2, type: .f16))
        // Kernel [in, out] = [[0.5, -1.25], [2, 0.0999…]] becomes [out, in].
        XCTAssertEqual(try model.tensor(named: "linear_1.weight")?.floatValues(), [0.5, 2.0, -1.25, 0.099975586])
        XCTAssertEqual(try model.tensor(named: "linear_1.bias")?.floatValues(), [-0.125, 65504])
    }

    func testFloat64WeightsAreRoundedToFloat32() throws {
        let third = 1.0 / 3.0
        let layer = TestLayer(className: "Dense", name: "d", config: ["units": 1, "activation": "linear"],
                              weights: [("kernel", [2, 1], [third, 1e-40]), ("bias", [1], [123456789.0])])
        let model = try convert(try KerasFixture.legacyH5([layer], width: 2, type: .f64))
        XCTAssertEqual(try model.tensor(named: "linear_1.weight")?.floatValues(), [Float(third), Float(1e-40)])
        XCTAssertEqual(try model.tensor(named: "linear_1.bias")?.floatValues(), [Float(123456789.0)])
    }

    func testKeras2NamesAndInboundNodes() throws {
        let layers = [TestLayer.normalization("normalization", width: 3), .dense("dense", inputs: 3, units: 2, activation: "relu")]
        let model = try convert(try KerasFixture.legacyH5(layers, width: 3, style: .keras2Functional, weightSuffix: ":0"))
        XCTAssertEqual(model.graph.map(\.opName), ["normalize", "dense", "relu"])
    }

    func testFixedLengthStringAttributes() throws {
        let layers = [TestLayer.dense("d", inputs: 2, units: 2, activation: "sigmoid")]
        let model = try convert(try KerasFixture.legacyH5(layers, width: 2, fixedLengthStrings: true))
        XCTAssertEqual(model.graph.map(\.opName), ["dense", "sigmoid"])
    }

    func testVersion2ObjectHeaders() throws {
        // libver="latest" files keep attributes in version-2 headers ("OHDR" chunks).
        let layers = [TestLayer.normalization("n", width: 3), .dense("d", inputs: 3, units: 2, activation: "relu")]
        let model = try convert(try KerasFixture.legacyH5(layers, width: 3, latestFormat: true))
        XCTAssertEqual(model.graph.map(\.opName), ["normalize", "dense", "relu"])
    }

    func testRefusesStringAttributesInDenseStorage() throws {
        // More than 8 attributes on a version-2 header move them all to a fractal heap.
        let bytes = try KerasFixture.legacyH5([.dense("d", inputs: 2, units: 1)], width: 2, latestFormat: true) { w in
            for i in 0..<12 { try w.strings("extra_\(i)", on: "/", ["x"], scalar: true) }
        }
        KerasTestSupport.assertThrows(.unsupported, containing: ["model_config", "dense"]) { try self.convert(bytes) }
    }

    func testFileNamedLikeACatalogHeadGetsNoCatalogMeaning() throws {
        let model = try convert(try KerasFixture.legacyH5([.dense("d", inputs: 3, units: 1)], width: 3), name: "clip_autokeras_nsfw_b32_x.h5")
        XCTAssertEqual(model.card.task, .unknown)
        XCTAssertEqual(model.card.backbone, "unknown")
        XCTAssertNil(model.card.threshold)
        XCTAssertEqual(model.card.name, "clip_autokeras_nsfw_b32_x")
        let named = try convertModel(bytes: try KerasFixture.legacyH5([.dense("d", inputs: 3, units: 1)], width: 3),
                                                 options: ConversionOptions(fileName: "m.h5", stated: StatedMeaning(backbone: "ViT-B-32/openai", name: "mine")))
        XCTAssertEqual(named.card.name, "mine")
        XCTAssertEqual(named.card.backbone, "ViT-B-32/openai")
    }

    // MARK: hostile and broken files

    func testRejectsAMissingWeight() throws {
        let bytes = try KerasFixture.legacyH5([.dense("d0", inputs: 2, units: 2), .dense("d1", inputs: 2, units: 1)], width: 2) {
            try $0.delete("/model_weights/d1/d1/bias")
        }
        KerasTestSupport.assertThrows(.mismatch, containing: ["'d1'", "Dense", "bias"]) { try self.convert(bytes) }
    }

    func testRejectsAKernelShapeThatDisagreesWithTheConfig() throws {
        var wrong = TestLayer.dense("d0", inputs: 4, units: 3)
        wrong.config["units"] = 5
        KerasTestSupport.assertThrows(.mismatch, containing: ["'d0'", "kernel", "[4, 3]"]) {
            try self.convert(try KerasFixture.legacyH5([wrong], width: 4))
        }
        // The kernel's input side must match the width reaching the layer.
        KerasTestSupport.assertThrows(.mismatch, containing: ["'d1'", "3 wide"]) {
            try self.convert(try KerasFixture.legacyH5([.dense("d0", inputs: 4, units: 3), .dense("d1", inputs: 2, units: 1)], width: 4))
        }
        KerasTestSupport.assertThrows(.mismatch, containing: ["'n'", "mean"]) {
            try self.convert(try KerasFixture.legacyH5([.normalization("n", width: 3)], width: 4))
        }
    }

    func testRejectsALambdaLayerNamingIt() throws {
        let lambda = TestLayer(className: "Lambda", name: "evil",
                               config: ["function": ["class_name": "__lambda__", "config": ["code": "4wEAAAAAAAAA"]]])
        KerasTestSupport.assertThrows(.unsafe, containing: ["'evil'", "Lambda"]) {
            try self.convert(try KerasFixture.legacyH5([.dense("d", inputs: 2, units: 2), lambda], width: 2))
        }
    }

    func testRejectsACustomLayerNamingItsClass() throws {
        var custom = TestLayer(className: "Custom>MultiCategoryEncoding", name: "multi_category_encoding", config: ["encoding": ["none"]])
        KerasTestSupport.assertThrows(.unsupported, containing: ["'multi_category_encoding'", "Custom>MultiCategoryEncoding"]) {
            try self.convert(try KerasFixture.legacyH5([custom], width: 2))
        }
        // A known class name loaded from a foreign module is custom too.
        custom = TestLayer(className: "Dense", name: "d", config: ["units": 1])
        var config = KerasFixture.config([custom], width: 2)
        var body = config["config"] as! [String: Any]
        var entries = body["layers"] as! [[String: Any]]
        entries[1]["module"] = "my_package.layers"
        body["layers"] = entries
        config["config"] = body
        KerasTestSupport.assertThrows(.unsupported, containing: ["'d'", "my_package.layers"]) {
            try self.convert(try KerasFixture.legacyH5([.dense("d", inputs: 2, units: 1)], width: 2, config: config))
        }
    }

    func testRejectsUnsupportedActivation() throws {
        KerasTestSupport.assertThrows(.unsupported, containing: ["'d'", "softmax"]) {
            try self.convert(try KerasFixture.legacyH5([.dense("d", inputs: 2, units: 2, activation: "softmax")], width: 2))
        }
        KerasTestSupport.assertThrows(.unsupported, containing: ["'r'", "max_value"]) {
            try self.convert(try KerasFixture.legacyH5([TestLayer(className: "ReLU", name: "r", config: ["max_value": 6.0])], width: 2))
        }
    }

    func testRejectsAFunctionalModelThatIsNotOneChain() throws {
        let layers = [TestLayer.dense("a", inputs: 2, units: 2), .dense("b", inputs: 2, units: 2)]
        var config = KerasFixture.config(layers, width: 2)
        var body = config["config"] as! [String: Any]
        var entries = body["layers"] as! [[String: Any]]
        // Layer b reads both the input and layer a.
        let tensor = { (name: String) -> [String: Any] in
            ["class_name": "__keras_tensor__", "config": ["shape": [NSNull(), 2], "keras_history": [name, 0, 0]] as [String: Any]]
        }
        entries[2]["inbound_nodes"] = [["args": [[tensor("embedding"), tensor("a")]], "kwargs": [String: Any]()] as [String: Any]]
        body["layers"] = entries
        config["config"] = body
        KerasTestSupport.assertThrows(.unsupported, containing: ["'b'", "2 inputs"]) {
            try self.convert(try KerasFixture.legacyH5(layers, width: 2, config: config))
        }
        // A layer off the input→output path.
        body["output_layers"] = ["a", 0, 0]
        config["config"] = body
        entries[2]["inbound_nodes"] = [["args": [tensor("a")], "kwargs": [String: Any]()] as [String: Any]]
        body["layers"] = entries
        config["config"] = body
        KerasTestSupport.assertThrows(.unsupported, containing: ["'b'", "single-chain"]) {
            try self.convert(try KerasFixture.legacyH5(layers, width: 2, config: config))
        }
    }

    func testRejectsAWeightsOnlyFile() throws {
        let w = try HDF5TestWriter()
        try w.group("/dense")
        let bytes = try w.finish()
        KerasTestSupport.assertThrows(.unsupported, containing: ["model_config"]) { try self.convert(bytes) }
    }

    func testRejectsWeightNamesInTheWrongOrder() throws {
        let layers = [TestLayer.dense("d", inputs: 2, units: 2)]
        let bytes = try KerasFixture.legacyH5(layers, width: 2) { w in
            try w.delete("/model_weights/d")
            try w.group("/model_weights/d")
            try w.strings("weight_names", on: "/model_weights/d", ["d/bias", "d/kernel"])
            try w.floats("/model_weights/d/d/kernel", shape: [2, 2], [1, 2, 3, 4])
            try w.floats("/model_weights/d/d/bias", shape: [2], [1, 2])
        }
        KerasTestSupport.assertThrows(.mismatch, containing: ["'d'", "d/bias", "kernel"]) { try self.convert(bytes) }
    }

    /// Keras hands stored weights out by position, so names that disagree with the config
    /// would give a layer another layer's weights.
    func testRejectsLayerNamesThatDisagreeWithTheConfig() throws {
        let a = TestLayer.dense("a", inputs: 2, units: 2), b = TestLayer.dense("b", inputs: 2, units: 2, seed: 2)
        KerasTestSupport.assertThrows(.mismatch, containing: ["layer_names", "[\"a\", \"b\"]", "[\"b\", \"a\"]"]) {
            try self.convert(try KerasFixture.legacyH5([a, b], width: 2, config: KerasFixture.config([b, a], width: 2)))
        }
        KerasTestSupport.assertThrows(.mismatch, containing: ["'b'", "does not define"]) {
            try self.convert(try KerasFixture.legacyH5([a, b], width: 2, config: KerasFixture.config([a], width: 2)))
        }
    }

    func testRejectsWeightsForALayerThatTakesNone() throws {
        let layers = [TestLayer.dense("d", inputs: 2, units: 2), TestLayer(className: "Dropout", name: "drop", config: ["rate": 0.1])]
        let bytes = try KerasFixture.legacyH5(layers, width: 2) { w in
            try w.delete("/model_weights/drop")
            try w.group("/model_weights/drop")
            try w.strings("weight_names", on: "/model_weights/drop", ["drop/kernel"])
            try w.floats("/model_weights/drop/drop/kernel", shape: [1], [1])
        }
        KerasTestSupport.assertThrows(.mismatch, containing: ["'drop'", "Dropout"]) { try self.convert(bytes) }
    }

    func testRejectsAnIntegerKernel() throws {
        let bytes = try KerasFixture.legacyH5([.dense("d", inputs: 2, units: 1)], width: 2) { w in
            try w.delete("/model_weights/d/d/kernel")
            try w.int64s("/model_weights/d/d/kernel", shape: [2, 1], [1, 2])
        }
        KerasTestSupport.assertThrows(.mismatch, containing: ["kernel", "integers"]) { try self.convert(bytes) }
    }

    func testRejectsADatasetOverTheElementLimitBeforeReadingIt() throws {
        var limits = ReaderLimits()
        limits.maxTensorElements = 10
        let bytes = try KerasFixture.legacyH5([.dense("d", inputs: 4, units: 4)], width: 4)
        KerasTestSupport.assertThrows(.limitExceeded, containing: ["kernel", "16 elements"]) { try self.convert(bytes, limits: limits) }
    }

    func testRejectsADatasetThatDeclaresMoreDataThanItStores() throws {
        // A kernel declared 2000 × 3000 but never written: no bytes stored, so nothing is allocated.
        let layer = TestLayer(className: "Dense", name: "d", config: ["units": 3000, "use_bias": false], weights: [])
        let bytes = try KerasFixture.legacyH5([layer], width: 2000) { w in
            try w.delete("/model_weights/d")
            try w.group("/model_weights/d")
            try w.strings("weight_names", on: "/model_weights/d", ["d/kernel"])
            try w.floats("/model_weights/d/d/kernel", shape: [2000, 3000], [])
        }
        KerasTestSupport.assertThrows(.malformed, containing: ["kernel", "stores 0 bytes"]) { try self.convert(bytes) }
    }

    func testRejectsSoftAndExternalLinks() throws {
        let soft = try KerasFixture.legacyH5([.dense("d", inputs: 2, units: 1)], width: 2) { w in
            try w.floats("/elsewhere", shape: [1], [0.5])
            try w.delete("/model_weights/d/d/bias")
            try w.softLink(to: "/elsewhere", at: "/model_weights/d/d/bias")
        }
        KerasTestSupport.assertThrows(.unsafe, containing: ["bias", "link"]) { try self.convert(soft) }
        let external = try KerasFixture.legacyH5([.dense("d", inputs: 2, units: 1)], width: 2) { w in
            try w.delete("/model_weights/d/d/kernel")
            try w.externalLink(file: "/etc/passwd", object: "/x", at: "/model_weights/d/d/kernel")
        }
        KerasTestSupport.assertThrows(.unsafe, containing: ["kernel", "link"]) { try self.convert(external) }
    }

    func testRejectsBrokenConfigJSON() throws {
        let w = try HDF5TestWriter()
        try w.strings("model_config", on: "/", ["{\"class_name\": "], scalar: true)
        let broken = try w.finish()
        KerasTestSupport.assertThrows(.malformed, containing: ["JSON"]) { try self.convert(broken) }
    }

    /// Offset of the first global heap collection ("GCOL") of an HDF5 image.
    func globalHeap(_ bytes: Data) throws -> Int {
        let r = try XCTUnwrap(bytes.range(of: Data("GCOL".utf8)))
        return r.lowerBound
    }

    func testRejectsAStringWhoseHeapObjectDoesNotExist() throws {
        // libhdf5 1.10 dereferences a null object here (H5HG_read); clipsafety reads the heap itself.
        var bytes = try KerasFixture.legacyH5([.dense("d", inputs: 2, units: 1)], width: 2)
        let heap = try globalHeap(bytes)
        bytes[heap + 16] = 0x77  // the first object's index: 1 → 0x77
        KerasTestSupport.assertThrows(.malformed, containing: ["heap object 1"]) { try self.convert(bytes) }
    }

    func testRejectsAStringLongerThanItsHeapObject() throws {
        // libhdf5 1.10 copies the object into a buffer sized by the string's length.
        var bytes = try KerasFixture.legacyH5([.dense("d", inputs: 2, units: 1)], width: 2)
        let heap = try globalHeap(bytes)
        for i in 0..<8 { bytes[heap + 24 + i] = i == 0 ? 8 : 0 }  // the first object's size → 8
        XCTAssertThrowsError(try convert(bytes)) { error in
            XCTAssertEqual((error as? ClipSafetyError)?.kind, .malformed, "\(error)")
        }
    }

    func testRejectsAHeapCollectionLargerThanTheFile() throws {
        var bytes = try KerasFixture.legacyH5([.dense("d", inputs: 2, units: 1)], width: 2)
        let heap = try globalHeap(bytes)
        for i in 0..<8 { bytes[heap + 8 + i] = 0x7f }
        KerasTestSupport.assertThrows(.malformed, containing: ["global heap"]) { try self.convert(bytes) }
    }

    func testEveryPrefixOfAFixtureThrowsWithoutTrapping() throws {
        let bytes = try KerasFixture.legacyH5([.normalization("n", width: 3), .dense("d", inputs: 3, units: 1, activation: "sigmoid")], width: 3)
        XCTAssertNoThrow(try convert(bytes))
        for length in stride(from: 0, to: bytes.count, by: max(1, bytes.count / 300)) {
            XCTAssertThrowsError(try convert(bytes.prefix(length)), "prefix of \(length) bytes")
        }
    }

    func testRejectsGarbageAfterTheMagic() throws {
        var bytes = Data([0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a])
        bytes.append(Data(repeating: 0xAB, count: 4000))
        XCTAssertThrowsError(try convert(bytes)) { error in
            XCTAssertEqual((error as? ClipSafetyError)?.kind, .malformed)
        }
    }
}
