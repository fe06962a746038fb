import Foundation
import XCTest
import TestSupport
import Runtime
@testable import Converters

/// Issue 20, point 7: the third round of hostile classes for every format but the HDF5
/// preflight classes (HDF5PreflightTests), plus deflate bombs inside HDF5 chunks. Each class
/// has its own fixture; invalid ones must be refused with a ClipSafetyError naming the reason
/// within a bounded time, valid ones must read to the values their writer meant.
final class HostileRound3Tests: XCTestCase {
    /// Every refusal here must come inside the contract's 30 s, even in a debug build on a shared CPU.
    static let timeBudget: TimeInterval = 25

    private func timed<T>(_ label: String, file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> T) rethrows -> T {
        let start = Date()
        defer {
            let seconds = Date().timeIntervalSince(start)
            XCTAssertLessThan(seconds, Self.timeBudget, "\(label) took \(seconds) s", file: file, line: line)
        }
        return try body()
    }

    private func refuse(_ f: HostileRound3.Fixture, file: StaticString = #filePath, line: UInt = #line,
                        _ body: () throws -> Any) {
        timed(f.name, file: file, line: line) {
            _ = assertClipSafetyError(containing: f.reason, f.name, file: file, line: line, body)
        }
    }

    // MARK: - Pickles and torch views

    /// Stride-0 views are described without expanding them; reading them all (as `inspect
    /// --stats` would) stops at the uncompressed-byte budget, not at memory's end.
    func testStrideZeroExpansionStopsAtTheByteBudgetWhenRead() throws {
        let f = try XCTUnwrap(HostileRound3.pickleFixtures().first { $0.name == "pickle-stride0-expansion.pth" })
        let described = try FormatRegistry.describe(f.bytes)
        XCTAssertEqual(described.tensors.count, 8)
        timed(f.name) {
            _ = assertClipSafetyError(containing: "expand to more than the uncompressed limit", f.name) {
                for t in described.tensors { _ = try t.read() }
                return ()
            }
        }
    }

    func testPickleClassesAreRefusedOrReadAsTorchWould() throws {
        for f in HostileRound3.pickleFixtures() {
            switch f.outcome {
            case .refused:
                refuse(f) { try convertModel(bytes: f.bytes, options: ConversionOptions(fileName: f.name)) }
            case .readable:
                let tensors = try timed(f.name) { try TorchCheckpoint(bytes: f.bytes).tensors }
                let values = Dictionary(uniqueKeysWithValues: try tensors.map { ($0.name, try $0.floatValues()) })
                // What torch.as_strided gives for each view of storage "0" = 1…6 and "1" = 0.5, -0.5.
                XCTAssertEqual(values["broadcast"], [0.5, -0.5, 0.5, -0.5, 0.5, -0.5, 0.5, -0.5])
                XCTAssertEqual(values["overlap"], [1, 2, 3, 2, 3, 4, 3, 4, 5])
                XCTAssertEqual(values["fc.weight"], [1, 2, 3, 4, 5, 6])
                XCTAssertEqual(values["tail"], [5, 6])
            }
        }
    }

    func testSelfCyclesAreRefusedByThePickleReaderItself() {
        for f in HostileRound3.pickleFixtures() where f.name.contains("cycle") {
            var zip = try? ZipArchive(bytes: f.bytes)
            let pickle = try? zip?.read(named: "m/data.pkl")
            zip = nil
            refuse(f) { try TorchPickleReader.read(bytes: pickle ?? Data(), limits: ReaderLimits()) }
        }
    }

    // MARK: - Zip archives

    func testZipClassesAreRefused() throws {
        for f in HostileRound3.zipFixtures() {
            switch f.outcome {
            case .refused:
                refuse(f) { try convertModel(bytes: f.bytes, options: ConversionOptions(fileName: f.name)) }
            case .readable:
                let tensors = try timed(f.name) { try TorchCheckpoint(bytes: f.bytes).tensors }
                XCTAssertEqual(try tensors.map { try $0.floatValues() }, [[1, 2, 3, 4, 5, 6], [0.5, -0.5]], f.name)
            }
        }
    }

    func testDuplicateConfigJSONInAKerasArchiveIsRefused() throws {
        let dense = TestLayer.dense("dense", inputs: 4, units: 1, activation: "sigmoid")
        let good = try KerasFixture.keras([dense], width: 4)
        let archive = try ZipArchive(bytes: good)
        var members = try archive.entries.map { HostileRound3.ZipMember($0.name, try archive.read($0)) }
        XCTAssertNoThrow(try convertModel(bytes: HostileRound3.zip(members), options: ConversionOptions(fileName: "m.keras")))
        // A second config.json: Python's zipfile reads the last one, libzip the first.
        var lambda = KerasFixture.config([dense], width: 4)
        lambda["class_name"] = "Lambda"
        members.append(HostileRound3.ZipMember("config.json", Data(try KerasFixture.json(lambda).utf8)))
        let f = HostileRound3.Fixture(name: "keras-duplicate-config.keras", bytes: HostileRound3.zip(members), outcome: .refused, reason: "same name")
        refuse(f) { try convertModel(bytes: f.bytes, options: ConversionOptions(fileName: f.name)) }
        XCTAssertNotEqual(ModelScanner.scan(bytes: f.bytes, path: f.name).verdict, .safe)
    }

    // MARK: - Keras configs

    private let dense = TestLayer.dense("dense", inputs: 4, units: 1, activation: "sigmoid")

    /// The config of one Dense layer whose config gets `key: value`.
    private func config(setting key: String, to value: Any) -> [String: Any] {
        var layer = dense
        layer.config[key] = value
        return KerasFixture.config([layer], width: 4)
    }

    /// Both Keras formats around a config.
    private func kerasFiles(_ cfg: [String: Any]) throws -> [(String, Data)] {
        [("m.keras", try KerasFixture.kerasArchive(config: cfg, weights: try KerasFixture.weightsH5([dense]))),
         ("m.h5", try KerasFixture.legacyH5([dense], width: 4, config: cfg))]
    }

    func testKerasObjectsNamingForeignModulesRegisteredNamesOrTFSMLayerAreUnsafe() throws {
        let osSystem: [String: Any] = ["module": "os", "class_name": "system", "config": ["command": "touch /tmp/pwned"], "registered_name": NSNull()]
        let popen: [String: Any] = ["module": "subprocess", "class_name": "Popen", "config": [String: Any](), "registered_name": NSNull()]
        let registered: [String: Any] = ["module": "keras.regularizers", "class_name": "L2", "config": ["l2": 0.01], "registered_name": "my_pkg>Evil"]
        let cases: [(String, [String: Any])] = [
            ("initializer os.system", config(setting: "kernel_initializer", to: osSystem)),
            ("regularizer subprocess.Popen", config(setting: "kernel_regularizer", to: ["class_name": "L1L2", "module": "keras.regularizers", "config": ["inner": popen]] as [String: Any])),
            ("registered regularizer", config(setting: "bias_regularizer", to: registered)),
            ("TFSMLayer", {
                var cfg = KerasFixture.config([dense], width: 4)
                var inner = cfg["config"] as! [String: Any]
                var layers = inner["layers"] as! [[String: Any]]
                layers[1]["class_name"] = "TFSMLayer"
                layers[1]["config"] = ["name": "dense", "filepath": "/tmp/other", "call_endpoint": "serve"]
                inner["layers"] = layers
                cfg["config"] = inner
                return cfg
            }()),
        ]
        for (label, cfg) in cases {
            for (name, bytes) in try kerasFiles(cfg) {
                let f = HostileRound3.Fixture(name: "\(label) \(name)", bytes: bytes, outcome: .refused, reason: "")
                let e = timed(f.name) {
                    assertClipSafetyError([], containing: nil, f.name) { try convertModel(bytes: bytes, options: ConversionOptions(fileName: name)) }
                }
                XCTAssertEqual(e?.kind, .unsafe, "\(f.name): \(e?.message ?? "")")
                XCTAssertEqual(ModelScanner.scan(bytes: bytes, path: name).verdict, .unsafe, f.name)
            }
        }
    }

    func testDeepAndHugeJSONIsRefusedBeforeItIsBuilt() throws {
        let deep = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        var huge = "["
        huge.reserveCapacity(20_000_002)
        for i in 0..<10_000_000 { huge += i == 0 ? "0" : ",0" }
        huge += "]"
        for (label, text, reason) in [("deep", deep, "deeper"), ("huge", huge, "values")] {
            let cfgText = #"{"class_name": "Functional", "config": {"layers": [], "mean": "# + text + "}}"
            let data = Data(cfgText.utf8)
            timed(label) {
                assertClipSafetyError([.limitExceeded], containing: reason, label) {
                    try JSONValue(parsing: data, what: "config.json", limits: ReaderLimits())
                }
            }
            let keras = try KerasFixture.kerasArchive(config: [:], weights: nil)
            let archive = try ZipArchive(bytes: keras)
            let members = try archive.entries.map { HostileRound3.ZipMember($0.name, $0.name == "config.json" ? data : try archive.read($0)) }
            let file = HostileRound3.zip(members + [HostileRound3.ZipMember("model.weights.h5", try KerasFixture.weightsH5([dense]))])
            timed("\(label) .keras") {
                assertClipSafetyError([.limitExceeded], containing: reason, label) { try convertModel(bytes: file, options: ConversionOptions(fileName: "m.keras")) }
            }
            XCTAssertEqual(ModelScanner.scan(bytes: file, path: "m.keras").verdict, .unreadable, label)
        }
    }

    // MARK: - .npy

    func testNpyHeadersThatAreNotPlainDictLiteralsAreRefused() {
        for f in HostileRound3.npyFixtures() {
            refuse(f) { try NpyArray(bytes: f.bytes) }
        }
    }

    func testFortranShapeWithAZeroDimensionReadsAsEmpty() throws {
        let bytes = HostileRound3.npy(header: "{'descr': '<f4', 'fortran_order': True, 'shape': (576460752303423488, 0, 576460752303423488), }", data: Data())
        let a = try NpyArray(bytes: bytes)
        XCTAssertEqual(a.shape, [1 << 59, 0, 1 << 59])
        XCTAssertEqual(a.data.count, 0)
    }

    func testFloat16NaNPayloadsReadAsNaN() throws {
        let a = try NpyArray(bytes: HostileRound3.float16NaNEmbeddings(width: 8))
        let v = a.floatValues()
        XCTAssertTrue(v[8..<16].allSatisfy(\.isNaN))
        XCTAssertTrue(v[0..<8].allSatisfy(\.isFinite))
    }

    // MARK: - Native graphs

    func testIllegalNativeGraphsAreRefused() throws {
        for f in try HostileRound3.nativeFixtures(base: HandBuilt.binaryModel()) {
            refuse(f) {
                let m = try NativeModel(bytes: f.bytes)
                try m.validate(limits: ReaderLimits())
                return m
            }
        }
    }

    func testAVocabularyOfTenMillionKeysIsRefusedWithinTheLimits() throws {
        let bytes = try HostileRound3.hugeVocabulary(base: HandBuilt.binaryModel(), keys: 10_000_000)
        let f = HostileRound3.Fixture(name: "native-10M-keys", bytes: bytes, outcome: .refused, reason: "keys")
        refuse(f) {
            let m = try NativeModel(bytes: bytes)
            try m.validate(limits: ReaderLimits())
            return m
        }
        // A small one still scores.
        let small = try NativeModel(bytes: try HostileRound3.hugeVocabulary(base: HandBuilt.binaryModel(), keys: 1000))
        XCTAssertNoThrow(try Scorer(model: small))
    }

    // MARK: - HDF5: deflate bombs inside chunks

    func testAnHDF5ChunkWhoseDeflateStreamInflatesPastItsSizeIsRefused() throws {
        // An extra dataset of 16 384 incompressible floats in one deflated 64 KiB chunk.
        let n = 16_384
        let values = (0..<n).map { i in (sin(Double(i) * 12.9898) * 43758.5453).truncatingRemainder(dividingBy: 1) }
        let good = try KerasFixture.legacyH5([dense], width: 4) { w in
            try w.floats("/noise", shape: [n], values, storage: .init(chunks: [n], deflate: true))
        }
        XCTAssertNoThrow(try convertModel(bytes: good, options: ConversionOptions(fileName: "m.h5")))
        // Its B-tree's first key: chunk size (4 bytes), filter mask (4), two 8-byte offsets, then
        // the chunk's address.
        let node = try XCTUnwrap(HDF5PreflightTests.offsets(of: Data("TREE".utf8), in: good).first { good[$0 + 4] == 1 })
        let key = node + 8 + 16
        let size = Int(good[key..<(key + 4)].reversed().reduce(UInt32(0)) { $0 << 8 | UInt32($1) })
        let address = Int(good[(key + 24)..<(key + 32)].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
        // A zlib stream of zeros as long as the stored chunk: 160 times the chunk's 64 KiB.
        let bomb = Data([0x78, 0x9c]) + HostileZip.deflatedZeros(matches: (size - 8) * 8 / 13)
        XCTAssertLessThanOrEqual(bomb.count, size)
        var bytes = good
        bytes.replaceSubrange(address..<(address + bomb.count), with: bomb)
        HDF5PreflightTests.put(UInt32(bomb.count), in: &bytes, at: key)
        timed("deflate bomb") {
            _ = assertClipSafetyError([.malformed], containing: "deflate bomb", "bomb") {
                try convertModel(bytes: bytes, options: ConversionOptions(fileName: "m.h5"))
            }
        }
        // A stream cut short and one that is not zlib at all.
        var cut = good
        HDF5PreflightTests.put(UInt32(size / 2), in: &cut, at: key)
        assertClipSafetyError([.malformed], containing: "ends before") { try convertModel(bytes: cut, options: ConversionOptions(fileName: "m.h5")) }
        var garbage = good
        garbage.replaceSubrange(address..<(address + 4), with: [0xff, 0xff, 0xff, 0xff])
        assertClipSafetyError([.malformed], containing: "zlib") { try convertModel(bytes: garbage, options: ConversionOptions(fileName: "m.h5")) }
    }

    // MARK: - SavedModel

    private func savedModelZip() throws -> Data {
        try Data(contentsOf: URL(fileURLWithPath: try Fixtures.modelFile("clip_autokeras_nsfw_b32.zip")))
    }

    /// The b32 zip with `saved_model.pb` replaced by `change(saved_model.pb)`.
    private func savedModel(_ change: (Data) throws -> Data) throws -> Data {
        let archive = try ZipArchive(bytes: try savedModelZip())
        let members = try archive.entries.map { e -> HostileRound3.ZipMember in
            let data = try archive.read(e)
            return HostileRound3.ZipMember(e.name, e.name.hasSuffix("saved_model.pb") ? try change(data) : data)
        }
        return HostileRound3.zip(members)
    }

    private func editGraph(_ edit: (inout Tensorflow_SavedModel) throws -> Void) throws -> Data {
        try savedModel { data in
            var m = try Tensorflow_SavedModel(serializedBytes: data)
            try edit(&m)
            return try m.serializedData()
        }
    }

    private func convertSavedModel(_ label: String, _ bytes: Data, reason: String = "", kinds: Set<ClipSafetyError.Kind> = []) {
        timed(label) {
            _ = assertClipSafetyError(kinds, containing: reason.isEmpty ? nil : reason, label) {
                try convertModel(bytes: bytes, options: ConversionOptions(fileName: "m.zip"))
            }
        }
    }

    func testSavedModelGraphCyclesAndRecursiveFunctionsStop() throws {
        // The serving output's producer becomes an Identity loop: a → b → a.
        let cycle = try editGraph { m in
            var g = m.metaGraphs[0].graphDef
            let outName = m.metaGraphs[0].signatureDef["serving_default"]!.outputs.values.first!.name
            let node = String(outName.split(separator: ":")[0])
            let i = g.node.firstIndex { $0.name == node }!
            g.node[i].op = "Identity"
            g.node[i].input = ["loop_b"]
            var b = Tensorflow_NodeDef(); b.name = "loop_b"; b.op = "Identity"; b.input = [node]
            g.node.append(b)
            m.metaGraphs[0].graphDef = g
        }
        convertSavedModel("GraphDef cycle", cycle)
        // Every function in the library calls itself.
        let recursive = try editGraph { m in
            var lib = m.metaGraphs[0].graphDef.library.function
            for f in lib.indices {
                var call = Tensorflow_NodeDef()
                call.name = "self_call"; call.op = "StatefulPartitionedCall"
                var attr = Tensorflow_AttrValue(); var fn = Tensorflow_NameAttrList(); fn.name = lib[f].signature.name
                attr.func = fn
                call.attr["f"] = attr
                lib[f].nodeDef.append(call)
            }
            m.metaGraphs[0].graphDef.library.function = lib
        }
        convertSavedModel("recursive functions", recursive)
    }

    func testAMillionNodeGraphAndTwentyMillionEmptyMessagesStayBounded() throws {
        let million = try editGraph { m in
            var filler = Tensorflow_NodeDef(); filler.op = "NoOp"
            m.metaGraphs[0].graphDef.node += (0..<1_000_000).map { i in var n = filler; n.name = "n\(i)"; return n }
        }
        // 1.1 M messages, under the budget: pointless but valid, so it converts.
        let model = try timed("10^6 nodes") { try convertModel(bytes: million, options: ConversionOptions(fileName: "m.zip")) }
        XCTAssertEqual(model.graph.count, 9)
        // A second MetaGraphDef whose graph holds 20M empty NodeDefs: 40 MB of `0a 00`.
        let empties = try savedModel { data in
            var graph = Data(); graph.reserveCapacity(40_000_000)
            for _ in 0..<20_000_000 { graph.append(contentsOf: [0x0A, 0x00]) }
            var meta = Data([0x12]); meta.varint(UInt64(graph.count)); meta.append(graph)
            var out = data; out.append(0x12); out.varint(UInt64(meta.count)); out.append(meta)
            return out
        }
        convertSavedModel("20M empty messages", empties, reason: "messages", kinds: [.limitExceeded])
    }

    func testSSTablePrefixBombsAndOutOfOrderRestartsAreRefused() throws {
        // Each entry shares the whole previous key and adds 1 KB: 4000 entries decode to 8 GB.
        var block = Data()
        var previous = 0
        for i in 0..<4000 {
            block.varint(UInt64(previous)); block.varint(1024); block.varint(0)
            block.append(Data(repeating: UInt8(1 + i % 200), count: 1024))
            previous += 1024
        }
        block.le32(0); block.le32(1)
        timed("prefix bomb") {
            var decoded = 0
            _ = assertClipSafetyError([.limitExceeded], containing: "decode") {
                try SSTableReader.entries(ofBlock: block, what: "data block", limits: ReaderLimits(), decoded: &decoded)
            }
        }
        // Restarts 0, 20, 10: out of order.
        var b = Data(count: 30)
        b.le32(0); b.le32(20); b.le32(10); b.le32(3)
        var decoded = 0
        assertClipSafetyError([.malformed], containing: "out of order") {
            try SSTableReader.entries(ofBlock: b, what: "data block", limits: ReaderLimits(), decoded: &decoded)
        }
    }

    /// The Const node holding the keys of the first vocabulary (column 92), edited.
    private func editVocabulary(_ edit: (inout Tensorflow_TensorProto) -> Void) throws -> Data {
        try editGraph { m in
            var nodes = m.metaGraphs[0].graphDef.node
            let i = nodes.firstIndex { $0.name == "Const_8" }!
            guard case .tensor(var t)? = nodes[i].attr["value"]?.value else { return }
            edit(&t)
            var v = Tensorflow_AttrValue(); v.tensor = t
            nodes[i].attr["value"] = v
            m.metaGraphs[0].graphDef.node = nodes
        }
    }

    func testVocabularyConstsThatLieOrRepeatAreRefusedAndNaNKeysConvert() throws {
        convertSavedModel("shape larger than the strings", try editVocabulary { t in
            t.tensorShape.dim[0].size = 1_000_000_000_000
        })
        convertSavedModel("shape smaller than the strings", try editVocabulary { t in t.tensorShape.dim[0].size = 3 })
        convertSavedModel("dtype float holding strings", try editVocabulary { t in t.dtype = .dtFloat })
        convertSavedModel("duplicate key", try editVocabulary { t in t.stringVal[1] = t.stringVal[0] }, reason: "twice")
        // "nan" and "inf" are keys like any other (AsString of such inputs, which impute_nan
        // replaces before the lookup anyway): the model converts and scores.
        let nanKeys = try editVocabulary { t in
            t.stringVal[0] = Data("nan".utf8)
            t.stringVal[1] = Data("inf".utf8)
        }
        let model = try timed("nan keys") { try convertModel(bytes: nanKeys, options: ConversionOptions(fileName: "m.zip")) }
        XCTAssertNoThrow(try Scorer(model: model))
    }
}
