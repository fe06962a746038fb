import Foundation
import XCTest
import TestSupport
import Runtime
@testable import Converters

// MARK: - Hand-written pickles

/// Writes pickle opcodes byte by byte, so tests can build the hostile inputs a real pickler
/// would never emit (python3 here has no torch, and no pickler should write these anyway).
struct TorchPickleBuilder {
    var bytes: [UInt8]

    init(protocol version: UInt8 = 2) { bytes = [0x80, version] }

    mutating func raw(_ b: UInt8...) { bytes += b }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func mark() { raw(0x28) }
    mutating func stop() { raw(0x2E) }
    mutating func none() { raw(0x4E) }
    mutating func bool(_ v: Bool) { raw(v ? 0x88 : 0x89) }
    mutating func emptyTuple() { raw(0x29) }
    mutating func tuple() { raw(0x74) }
    mutating func tuple1() { raw(0x85) }
    mutating func tuple2() { raw(0x86) }
    mutating func emptyDict() { raw(0x7D) }
    mutating func emptyList() { raw(0x5D) }
    mutating func setItem() { raw(0x73) }
    mutating func setItems() { raw(0x75) }
    mutating func appends() { raw(0x65) }
    mutating func append() { raw(0x61) }
    mutating func reduce() { raw(0x52) }
    mutating func build() { raw(0x62) }
    mutating func binPersId() { raw(0x51) }
    mutating func stackGlobal() { raw(0x93) }
    mutating func binPut(_ i: UInt8) { raw(0x71, i) }
    mutating func binGet(_ i: UInt8) { raw(0x68, i) }

    mutating func global(_ module: String, _ name: String) {
        raw(0x63)
        bytes += Array(module.utf8) + [0x0A] + Array(name.utf8) + [0x0A]
    }

    mutating func string(_ s: String) {
        raw(0x58)
        u32(UInt32(s.utf8.count))
        bytes += Array(s.utf8)
    }

    mutating func int(_ v: Int) {
        if (0...255).contains(v) {
            raw(0x4B, UInt8(v))
        } else if (0...65535).contains(v) {
            raw(0x4D, UInt8(v & 0xff), UInt8(v >> 8))
        } else {
            raw(0x4A)
            withUnsafeBytes(of: Int32(v).littleEndian) { bytes += $0 }
        }
    }

    mutating func intTuple(_ values: [Int]) {
        mark()
        values.forEach { int($0) }
        tuple()
    }

    var data: Data { Data(bytes) }
}

/// A tensor of a hand-built state dict: a strided view into a named storage.
struct TorchFixtureTensor {
    var name: String
    var storageKey: String
    var storageClass = "FloatStorage"
    var storageNumel: Int
    var offset = 0
    var shape: [Int]
    var stride: [Int]
    /// When set, the tensor is built with `_rebuild_tensor_v3` and this `torch.<dtype>`.
    var v3DType: String?
    /// Wraps the tensor in `_rebuild_parameter`.
    var parameter = false
}

enum TorchFixtures {
    /// The state-dict pickle `torch.save` would write for these tensors (persistent ids have a
    /// sixth `None` in the legacy format). `hostileValue` replaces the first tensor's value.
    static func stateDictPickle(_ tensors: [TorchFixtureTensor], legacy: Bool,
                                hostileValue: ((inout TorchPickleBuilder) -> Void)? = nil) -> Data {
        var p = TorchPickleBuilder()
        p.global("collections", "OrderedDict")
        p.emptyTuple()
        p.reduce()
        p.mark()
        for (i, t) in tensors.enumerated() {
            p.string(t.name)
            if i == 0, let hostileValue {
                hostileValue(&p)
                continue
            }
            if t.parameter { p.global("torch._utils", "_rebuild_parameter") }
            p.global("torch._utils", t.v3DType == nil ? "_rebuild_tensor_v2" : "_rebuild_tensor_v3")
            p.mark()
            // Persistent id.
            p.mark()
            p.string("storage")
            if t.storageClass == "UntypedStorage" { p.global("torch", "UntypedStorage") } else { p.global("torch", t.storageClass) }
            p.string(t.storageKey)
            p.string("cpu")
            p.int(t.storageNumel)
            if legacy { p.none() }
            p.tuple()
            p.binPersId()
            p.int(t.offset)
            p.intTuple(t.shape)
            p.intTuple(t.stride)
            p.bool(false)
            p.global("collections", "OrderedDict")
            p.emptyTuple()
            p.reduce()
            if let d = t.v3DType { p.global("torch", d) }
            p.tuple()
            p.reduce()
            if t.parameter {  // _rebuild_parameter(tensor, True, OrderedDict())
                p.bool(true)
                p.global("collections", "OrderedDict")
                p.emptyTuple()
                p.reduce()
                p.raw(0x87)  // TUPLE3
                p.reduce()
            }
        }
        p.setItems()
        // `_metadata`, as torch attaches it through BUILD.
        p.emptyDict()
        p.string("_metadata")
        p.global("collections", "OrderedDict")
        p.emptyTuple()
        p.reduce()
        p.mark()
        p.string("")
        p.emptyDict()
        p.string("version")
        p.int(1)
        p.setItem()
        p.setItems()
        p.setItem()
        p.build()
        p.stop()
        return p.data
    }

    static func floatBytes(_ values: [Float]) -> Data {
        var d = Data()
        for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { d.append(contentsOf: $0) } }
        return d
    }

    /// A zip-format checkpoint: `<prefix>/data.pkl`, `<prefix>/data/<key>`, `version`, `byteorder`.
    static func zip(pickle: Data, storages: [String: Data], prefix: String = "archive",
                    byteorder: String? = "little", in dir: TemporaryDirectory) throws -> Data {
        var members: [(name: String, data: Data)] = [(prefix + "/data.pkl", pickle)]
        if let byteorder { members.append((prefix + "/byteorder", Data(byteorder.utf8))) }
        for key in storages.keys.sorted() { members.append((prefix + "/data/" + key, storages[key]!)) }
        members.append((prefix + "/version", Data("3\n".utf8)))
        let path = dir.file("ckpt-\(UUID().uuidString).pth")
        try ZipArchive.write(members: members, to: path)
        return try Data(contentsOf: URL(fileURLWithPath: path))
    }

    /// A legacy-format checkpoint: magic, protocol, system info, state dict, keys, storages.
    static func legacy(pickle: Data, storages: [(key: String, numel: Int, bytes: Data)],
                       keyList: [String]? = nil) -> Data {
        var out = Data()
        var magic = TorchPickleBuilder()
        magic.raw(0x8A, 0x0A)
        magic.bytes += TorchCheckpoint.legacyMagic
        magic.stop()
        out.append(magic.data)
        var proto = TorchPickleBuilder()
        proto.int(1001)
        proto.stop()
        out.append(proto.data)
        var info = TorchPickleBuilder()
        info.emptyDict()
        info.mark()
        info.string("protocol_version"); info.int(1001)
        info.string("little_endian"); info.bool(true)
        info.string("type_sizes"); info.emptyDict()
        info.mark()
        info.string("short"); info.int(2)
        info.string("int"); info.int(4)
        info.string("long"); info.int(4)
        info.setItems()
        info.setItems()
        info.stop()
        out.append(info.data)
        out.append(pickle)
        var keys = TorchPickleBuilder()
        keys.emptyList()
        keys.mark()
        for k in keyList ?? storages.map(\.key) { keys.string(k) }
        keys.appends()
        keys.stop()
        out.append(keys.data)
        for s in storages {
            withUnsafeBytes(of: UInt64(s.numel).littleEndian) { out.append(contentsOf: $0) }
            out.append(s.bytes)
        }
        return out
    }

    /// A small valid 2-tensor head: `fc.weight` [2, 3], `fc.bias` [2].
    static let weights: [Float] = [1, 2, 3, 4, 5, 6]
    static let bias: [Float] = [0.5, -0.5]
    static let smallHead: [TorchFixtureTensor] = [
        TorchFixtureTensor(name: "fc.weight", storageKey: "0", storageNumel: 6, shape: [2, 3], stride: [3, 1]),
        TorchFixtureTensor(name: "fc.bias", storageKey: "1", storageNumel: 2, shape: [2], stride: [1]),
    ]
    static var smallStorages: [String: Data] { ["0": floatBytes(weights), "1": floatBytes(bias)] }
    static var smallLegacyStorages: [(key: String, numel: Int, bytes: Data)] {
        [("0", 6, floatBytes(weights)), ("1", 2, floatBytes(bias))]
    }
}

// MARK: - Tests

final class TorchPickleTests: XCTestCase {
    var dir: TemporaryDirectory!
    var marker: String!

    override func setUpWithError() throws {
        dir = try TemporaryDirectory()
        marker = dir.file("pwned")
    }

    override func tearDown() {
        dir.remove()
    }

    private func assertRefused(_ bytes: Data, _ kinds: Set<ClipSafetyError.Kind>, containing text: String,
                               file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try TorchCheckpoint(bytes: bytes), file: file, line: line) { error in
            guard let e = error as? ClipSafetyError else { return XCTFail("not a ClipSafetyError: \(error)", file: file, line: line) }
            XCTAssertTrue(kinds.contains(e.kind), "kind \(e.kind): \(e.message)", file: file, line: line)
            XCTAssertTrue(e.message.contains(text), "message lacks '\(text)': \(e.message)", file: file, line: line)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: marker), "a payload ran", file: file, line: line)
    }

    /// Both containers around one state-dict pickle (storages for the small head).
    private func bothContainers(_ pickle: Data, legacyPickle: Data) throws -> [(String, Data)] {
        [("zip", try TorchFixtures.zip(pickle: pickle, storages: TorchFixtures.smallStorages, in: dir)),
         ("legacy", TorchFixtures.legacy(pickle: legacyPickle, storages: TorchFixtures.smallLegacyStorages))]
    }

    // MARK: Well-formed

    func testReadsHandBuiltStateDictInBothContainers() throws {
        for legacy in [false, true] {
            let pickle = TorchFixtures.stateDictPickle(TorchFixtures.smallHead, legacy: legacy)
            let bytes = legacy
                ? TorchFixtures.legacy(pickle: pickle, storages: TorchFixtures.smallLegacyStorages)
                : try TorchFixtures.zip(pickle: pickle, storages: TorchFixtures.smallStorages, in: dir)
            let ckpt = try TorchCheckpoint(bytes: bytes)
            XCTAssertEqual(ckpt.container, legacy ? .legacy : .zip)
            XCTAssertEqual(ckpt.tensors.map(\.name), ["fc.weight", "fc.bias"])
            XCTAssertEqual(ckpt.tensors[0].shape, [2, 3])
            XCTAssertEqual(try ckpt.tensors[0].floatValues(), TorchFixtures.weights)
            XCTAssertEqual(try ckpt.tensors[1].floatValues(), TorchFixtures.bias)
        }
    }

    /// A checkpoint is described from its pickle and storage headers: the element and byte
    /// limits refuse a tensor when it is read, not the description (`inspect` of a checkpoint
    /// larger than the limits lists it; converting it still refuses).
    func testDescriptionReadsNoTensorUntilAsked() throws {
        var small = ReaderLimits()
        small.maxTensorElements = 4
        var fewBytes = ReaderLimits()
        fewBytes.maxUncompressedBytes = 30
        for legacy in [false, true] {
            let pickle = TorchFixtures.stateDictPickle(TorchFixtures.smallHead, legacy: legacy)
            let bytes = legacy
                ? TorchFixtures.legacy(pickle: pickle, storages: TorchFixtures.smallLegacyStorages)
                : try TorchFixtures.zip(pickle: pickle, storages: TorchFixtures.smallStorages, in: dir)
            let described = try FormatRegistry.describe(bytes, limits: small)
            XCTAssertEqual(described.tensors.map(\.shape), [[2, 3], [2]])
            XCTAssertEqual(try described.tensors[1].read().floatValues(), TorchFixtures.bias, "2 elements are within the limit")
            XCTAssertThrowsError(try described.tensors[0].read()) { XCTAssertEqual(($0 as? ClipSafetyError)?.kind, .limitExceeded) }
            // 24 + 8 bytes: the second read goes over a 30-byte budget (legacy: storages are
            // views of the file; a zip's members count against the same limit when inflated).
            if legacy {
                let budgeted = try FormatRegistry.describe(bytes, limits: fewBytes)
                XCTAssertNoThrow(try budgeted.tensors[0].read())
                XCTAssertThrowsError(try budgeted.tensors[1].read()) { XCTAssertTrue("\($0)".contains("uncompressed limit"), "\($0)") }
            }
            XCTAssertThrowsError(try TorchCheckpoint(bytes: bytes, limits: small))
        }
    }

    func testMaterialisesTransposedView() throws {
        // weight.t(): shape [3, 2], stride [1, 3] over the same 6 floats.
        var t = TorchFixtures.smallHead
        t[0].shape = [3, 2]
        t[0].stride = [1, 3]
        let bytes = try TorchFixtures.zip(pickle: TorchFixtures.stateDictPickle(t, legacy: false), storages: TorchFixtures.smallStorages, in: dir)
        let ckpt = try TorchCheckpoint(bytes: bytes)
        XCTAssertEqual(try ckpt.tensors[0].floatValues(), [1, 4, 2, 5, 3, 6])
    }

    func testHonoursStorageOffsetAndSharedStorage() throws {
        // Both tensors view storage "0": the bias is elements 4…5 of the weight's storage.
        let t = [
            TorchFixtureTensor(name: "a", storageKey: "0", storageNumel: 6, shape: [2, 2], stride: [2, 1]),
            TorchFixtureTensor(name: "b", storageKey: "0", storageNumel: 6, offset: 4, shape: [2], stride: [1]),
        ]
        for legacy in [false, true] {
            let pickle = TorchFixtures.stateDictPickle(t, legacy: legacy)
            let bytes = legacy
                ? TorchFixtures.legacy(pickle: pickle, storages: [("0", 6, TorchFixtures.floatBytes(TorchFixtures.weights))])
                : try TorchFixtures.zip(pickle: pickle, storages: ["0": TorchFixtures.floatBytes(TorchFixtures.weights)], in: dir)
            let ckpt = try TorchCheckpoint(bytes: bytes)
            XCTAssertEqual(try ckpt.tensors[0].floatValues(), [1, 2, 3, 4])
            XCTAssertEqual(try ckpt.tensors[1].floatValues(), [5, 6])
        }
    }

    func testReadsUntypedStorageWithDTypeAndParameters() throws {
        // Two float16 values (1.0, -2.0) in an untyped storage of 4 bytes, through _rebuild_tensor_v3,
        // wrapped in _rebuild_parameter.
        let half = Data([0x00, 0x3C, 0x00, 0xC0])
        let t = [TorchFixtureTensor(name: "h", storageKey: "0", storageClass: "UntypedStorage", storageNumel: 4,
                                    shape: [2], stride: [1], v3DType: "float16", parameter: true)]
        let bytes = try TorchFixtures.zip(pickle: TorchFixtures.stateDictPickle(t, legacy: false), storages: ["0": half], in: dir)
        let ckpt = try TorchCheckpoint(bytes: bytes)
        XCTAssertEqual(ckpt.tensors[0].dtype, .f16)
        XCTAssertEqual(try ckpt.tensors[0].floatValues(), [1, -2])
    }

    func testSwapsBigEndianStorages() throws {
        var big = Data()
        for v in TorchFixtures.weights + TorchFixtures.bias { withUnsafeBytes(of: v.bitPattern.bigEndian) { big.append(contentsOf: $0) } }
        let storages = ["0": big.prefix(24), "1": big.suffix(8)]
        let bytes = try TorchFixtures.zip(pickle: TorchFixtures.stateDictPickle(TorchFixtures.smallHead, legacy: false),
                                          storages: storages.mapValues { Data($0) }, byteorder: "big", in: dir)
        XCTAssertEqual(try TorchCheckpoint(bytes: bytes).tensors[0].floatValues(), TorchFixtures.weights)
    }

    func testAcceptsAnyArchivePrefix() throws {
        let pickle = TorchFixtures.stateDictPickle(TorchFixtures.smallHead, legacy: false)
        let bytes = try TorchFixtures.zip(pickle: pickle, storages: TorchFixtures.smallStorages, prefix: "some_model-v2", byteorder: nil, in: dir)
        XCTAssertEqual(try TorchCheckpoint(bytes: bytes).tensors.count, 2)
    }

    // MARK: Hostile: code execution

    func testRefusesReduceToOsSystemInBothContainers() throws {
        let payload: (inout TorchPickleBuilder) -> Void = { p in
            p.global("os", "system")
            p.string("touch \(self.marker!)")
            p.tuple1()
            p.reduce()
        }
        let zip = TorchFixtures.stateDictPickle(TorchFixtures.smallHead, legacy: false, hostileValue: payload)
        let legacy = TorchFixtures.stateDictPickle(TorchFixtures.smallHead, legacy: true, hostileValue: payload)
        for (kind, bytes) in try bothContainers(zip, legacyPickle: legacy) {
            assertRefused(bytes, [.unsafe], containing: "os.system")
            try assertCLIExit65(bytes, name: "os-system-\(kind).pth")
        }
    }

    func testRefusesPosixSystemAsTopLevelPickle() throws {
        var p = TorchPickleBuilder()
        p.global("posix", "system")
        p.string("touch \(marker!)")
        p.tuple1()
        p.reduce()
        p.stop()
        for (_, bytes) in try bothContainers(p.data, legacyPickle: p.data) {
            assertRefused(bytes, [.unsafe], containing: "posix.system")
        }
    }

    func testRefusesBuiltinsEvalThroughStackGlobalInBothContainers() throws {
        let payload: (inout TorchPickleBuilder) -> Void = { p in
            p.string("builtins")
            p.string("eval")
            p.stackGlobal()
            p.string("__import__('os').system('touch \(self.marker!)')")
            p.tuple1()
            p.reduce()
        }
        let zip = TorchFixtures.stateDictPickle(TorchFixtures.smallHead, legacy: false, hostileValue: payload)
        let legacy = TorchFixtures.stateDictPickle(TorchFixtures.smallHead, legacy: true, hostileValue: payload)
        for (kind, bytes) in try bothContainers(zip, legacyPickle: legacy) {
            assertRefused(bytes, [.unsafe], containing: "builtins.eval")
            try assertCLIExit65(bytes, name: "eval-\(kind).pth")
        }
    }

    func testRefusesInstAndObjOpcodes() throws {
        var p = TorchPickleBuilder()
        p.mark()
        p.raw(0x69)  // INST os\nsystem\n
        p.bytes += Array("os\nsystem\n".utf8)
        p.stop()
        assertRefused(try TorchFixtures.zip(pickle: p.data, storages: [:], in: dir), [.unsafe], containing: "INST")
    }

    func testRefusesStorageConstructorCall() throws {
        var p = TorchPickleBuilder()
        p.global("torch", "FloatStorage")
        p.int(10)
        p.tuple1()
        p.reduce()
        p.stop()
        assertRefused(try TorchFixtures.zip(pickle: p.data, storages: [:], in: dir), [.malformed], containing: "torch.FloatStorage")
    }

    // MARK: Hostile: storages and shapes

    func testRefusesPersistentIdNamingMissingStorageInBothContainers() throws {
        var t = TorchFixtures.smallHead
        t[1].storageKey = "7"
        let zip = try TorchFixtures.zip(pickle: TorchFixtures.stateDictPickle(t, legacy: false),
                                        storages: ["0": TorchFixtures.floatBytes(TorchFixtures.weights)], in: dir)
        assertRefused(zip, [.malformed], containing: "'7'")
        try assertCLIExit65(zip, name: "missing-zip.pth")
        let legacy = TorchFixtures.legacy(pickle: TorchFixtures.stateDictPickle(t, legacy: true),
                                          storages: [("0", 6, TorchFixtures.floatBytes(TorchFixtures.weights))])
        assertRefused(legacy, [.malformed], containing: "'7'")
        try assertCLIExit65(legacy, name: "missing-legacy.pth")
    }

    func testRefusesTensorShapeBeyondItsStorageInBothContainers() throws {
        var t = TorchFixtures.smallHead
        t[0].shape = [3, 3]  // 9 elements over a storage of 6
        let zip = try TorchFixtures.zip(pickle: TorchFixtures.stateDictPickle(t, legacy: false), storages: TorchFixtures.smallStorages, in: dir)
        assertRefused(zip, [.malformed], containing: "fc.weight")
        try assertCLIExit65(zip, name: "shape-zip.pth")
        let legacy = TorchFixtures.legacy(pickle: TorchFixtures.stateDictPickle(t, legacy: true), storages: TorchFixtures.smallLegacyStorages)
        assertRefused(legacy, [.malformed], containing: "fc.weight")
        try assertCLIExit65(legacy, name: "shape-legacy.pth")
    }

    func testRefusesOffsetAndStrideBeyondStorage() throws {
        var t = TorchFixtures.smallHead
        t[1].offset = 1  // bias [2] at offset 1 of a 2-element storage: element 2 is outside
        let zip = try TorchFixtures.zip(pickle: TorchFixtures.stateDictPickle(t, legacy: false), storages: TorchFixtures.smallStorages, in: dir)
        assertRefused(zip, [.malformed], containing: "fc.bias")
        t = TorchFixtures.smallHead
        t[0].stride = [Int(Int32.max), 1]  // huge stride
        let zip2 = try TorchFixtures.zip(pickle: TorchFixtures.stateDictPickle(t, legacy: false), storages: TorchFixtures.smallStorages, in: dir)
        assertRefused(zip2, [.malformed], containing: "fc.weight")
    }

    func testRefusesStrideZeroViewsExpandingPastTheLimit() throws {
        // 40 tensors of 2M elements each, all stride-0 views of one 1-element storage: 320 MB
        // from a few bytes. Refused by the total cap, not materialised.
        let t = (0..<40).map { i in
            TorchFixtureTensor(name: "t\(i)", storageKey: "0", storageNumel: 1, shape: [2_000_000], stride: [0])
        }
        let zip = try TorchFixtures.zip(pickle: TorchFixtures.stateDictPickle(t, legacy: false),
                                        storages: ["0": TorchFixtures.floatBytes([1])], in: dir)
        assertRefused(zip, [.limitExceeded], containing: "expand")
        // One such view is fine and reads as repeated values.
        let one = try TorchFixtures.zip(pickle: TorchFixtures.stateDictPickle([TorchFixtureTensor(name: "r", storageKey: "0", storageNumel: 1, shape: [3], stride: [0])], legacy: false),
                                        storages: ["0": TorchFixtures.floatBytes([7])], in: dir)
        XCTAssertEqual(try TorchCheckpoint(bytes: one).tensors[0].floatValues(), [7, 7, 7])
    }

    func testCheckpointValuesAreDescribedButNotConverted() throws {
        // {'epoch': 3}: a training checkpoint without tensors: its values are read, no head is.
        var p = TorchPickleBuilder()
        p.emptyDict(); p.string("epoch"); p.int(3); p.setItem(); p.stop()
        let bytes = try TorchFixtures.zip(pickle: p.data, storages: [:], in: dir)
        let checkpoint = try TorchCheckpoint(bytes: bytes)
        XCTAssertEqual(checkpoint.values.map(\.key), ["epoch"])
        XCTAssertEqual(checkpoint.values.map(\.value), ["3"])
        XCTAssertTrue(checkpoint.tensors.isEmpty)
        XCTAssertThrowsError(try ModelLoader.convert(bytes: bytes, options: ConversionOptions(fileName: "c.pth")))
    }

    func testRefusesStorageRecordOfWrongSize() throws {
        var storages = TorchFixtures.smallStorages
        storages["0"] = TorchFixtures.floatBytes([1, 2, 3])
        let zip = try TorchFixtures.zip(pickle: TorchFixtures.stateDictPickle(TorchFixtures.smallHead, legacy: false), storages: storages, in: dir)
        assertRefused(zip, [.malformed], containing: "storage '0'")
    }

    func testRefusesLegacyCountDifferentFromPersistentId() {
        let pickle = TorchFixtures.stateDictPickle(TorchFixtures.smallHead, legacy: true)
        let bytes = TorchFixtures.legacy(pickle: pickle, storages: [("0", 5, TorchFixtures.floatBytes(TorchFixtures.weights)),
                                                                    ("1", 2, TorchFixtures.floatBytes(TorchFixtures.bias))])
        assertRefused(bytes, [.malformed], containing: "storage '0'")
    }

    func testRefusesLegacyStorageListNamingUnknownKey() {
        let pickle = TorchFixtures.stateDictPickle(TorchFixtures.smallHead, legacy: true)
        let bytes = TorchFixtures.legacy(pickle: pickle, storages: TorchFixtures.smallLegacyStorages, keyList: ["0", "9"])
        assertRefused(bytes, [.malformed], containing: "'9'")
    }

    func testRefusesTruncatedLegacyStorage() {
        let good = TorchFixtures.legacy(pickle: TorchFixtures.stateDictPickle(TorchFixtures.smallHead, legacy: true),
                                        storages: TorchFixtures.smallLegacyStorages)
        assertRefused(good.dropLast(3), [.truncated], containing: "storage '1'")
    }

    func testRefusesBytesAfterLastLegacyStorage() {
        var bytes = TorchFixtures.legacy(pickle: TorchFixtures.stateDictPickle(TorchFixtures.smallHead, legacy: true),
                                         storages: TorchFixtures.smallLegacyStorages)
        bytes.append(0)
        assertRefused(bytes, [.malformed], containing: "after the last storage")
    }

    // MARK: Hostile: the stack machine

    private func readPickle(_ p: TorchPickleBuilder, limits: ReaderLimits = .init()) throws -> PickleValue {
        try TorchPickleReader.read(bytes: p.data, limits: limits)
    }

    private func assertPickleRefused(_ p: TorchPickleBuilder, _ kind: ClipSafetyError.Kind, containing text: String,
                                     limits: ReaderLimits = .init(), line: UInt = #line) {
        XCTAssertThrowsError(try readPickle(p, limits: limits), line: line) { error in
            let e = error as? ClipSafetyError
            XCTAssertEqual(e?.kind, kind, "\(error)", line: line)
            XCTAssertTrue(e?.message.contains(text) ?? false, "\(error)", line: line)
        }
    }

    func testRefusesPopFromEmptyStack() {
        var p = TorchPickleBuilder()
        p.reduce()
        assertPickleRefused(p, .malformed, containing: "stack")
    }

    func testRefusesTupleWithoutMark() {
        var p = TorchPickleBuilder()
        p.int(1)
        p.tuple()
        assertPickleRefused(p, .malformed, containing: "MARK")
    }

    func testRefusesUnknownMemoIndex() {
        var p = TorchPickleBuilder()
        p.binGet(9)
        assertPickleRefused(p, .malformed, containing: "memo entry 9")
    }

    func testRefusesOddSetItems() {
        var p = TorchPickleBuilder()
        p.emptyDict(); p.mark(); p.string("k"); p.setItems()
        assertPickleRefused(p, .malformed, containing: "odd")
    }

    func testRefusesUnknownOpcode() {
        var p = TorchPickleBuilder()
        p.raw(0xFF)
        assertPickleRefused(p, .malformed, containing: "opcode 0xff at offset 2")
        var q = TorchPickleBuilder()
        q.raw(0x8F)  // EMPTY_SET: real pickle, never in a state dict
        assertPickleRefused(q, .malformed, containing: "opcode 0x8f")
    }

    func testRefusesStringLongerThanInput() {
        var p = TorchPickleBuilder()
        p.raw(0x58)
        p.u32(0xFFFF_FFF0)  // BINUNICODE declaring ~4 GiB
        p.bytes += Array("abc".utf8)
        assertPickleRefused(p, .truncated, containing: "declares")
    }

    func testRefusesProtocolsOutsideTwoToFive() {
        assertPickleRefused(TorchPickleBuilder(protocol: 6), .unsupported, containing: "protocol 6")
        var p1 = TorchPickleBuilder()
        p1.bytes = [0x4E, 0x2E]  // NONE STOP, no PROTO
        assertPickleRefused(p1, .unsupported, containing: "protocol 0 or 1")
    }

    func testRefusesNestingDeeperThanLimit() {
        var p = TorchPickleBuilder()
        for _ in 0..<200 { p.emptyList() }
        for _ in 0..<199 { p.append() }
        p.stop()
        var limits = ReaderLimits()
        limits.maxDepth = 50
        assertPickleRefused(p, .limitExceeded, containing: "deeper", limits: limits)
    }

    func testDeepNestingDoesNotCrash() {
        // A million nested 1-tuples would overflow the stack when freed if depth were unchecked.
        var p = TorchPickleBuilder()
        p.emptyTuple()
        for _ in 0..<1_000_000 { p.tuple1() }
        p.stop()
        assertPickleRefused(p, .limitExceeded, containing: "deeper")
    }

    func testRefusesMutatingAListPlacedInsideAnother() {
        // L = []; T = (L,); L.append(L) — a cycle; refused instead of built.
        var p = TorchPickleBuilder()
        p.emptyList(); p.binPut(0)
        p.tuple1()
        p.binGet(0)
        p.binGet(0)
        p.append()
        p.stop()
        assertPickleRefused(p, .malformed, containing: "already placed")
    }

    func testReadsMemoAndProtocol4Opcodes() throws {
        var p = TorchPickleBuilder(protocol: 4)
        p.raw(0x95); p.bytes += [UInt8](repeating: 0, count: 8)  // FRAME 0 (length not enforced beyond bounds)
        p.raw(0x8C, 3); p.bytes += Array("abc".utf8)  // SHORT_BINUNICODE
        p.raw(0x94)  // MEMOIZE → memo 0
        p.raw(0x68, 0)  // BINGET 0
        p.tuple2()
        p.stop()
        guard case .tuple(let items, _) = try readPickle(p), items.count == 2,
              case .string("abc") = items[0], case .string("abc") = items[1] else {
            return XCTFail("expected ('abc', 'abc')")
        }
    }

    func testReadsNegativeAndWideLongs() throws {
        var p = TorchPickleBuilder()
        p.raw(0x8A, 2, 0x00, 0xFF)  // LONG1 -256
        p.stop()
        guard case .int(-256) = try readPickle(p) else { return XCTFail("expected -256") }
    }

    func testEveryPrefixOfAGoodCheckpointIsRefusedNotTrapped() throws {
        let pickle = TorchFixtures.stateDictPickle(TorchFixtures.smallHead, legacy: true)
        let good = TorchFixtures.legacy(pickle: pickle, storages: TorchFixtures.smallLegacyStorages)
        XCTAssertNoThrow(try TorchCheckpoint(bytes: good))
        for n in 0..<good.count {
            XCTAssertThrowsError(try TorchCheckpoint(bytes: good.prefix(n)), "prefix \(n)")
        }
        // And every single-byte corruption of the state-dict pickle is either read or refused.
        let start = good.range(of: pickle)!.lowerBound
        for i in start..<(start + pickle.count) {
            var bad = good
            bad[i] ^= 0x5A
            _ = try? TorchCheckpoint(bytes: bad)
        }
    }

    // MARK: CLI

    /// Runs the built `clipsafety convert` on `bytes` and expects exit 65 (data error).
    private func assertCLIExit65(_ bytes: Data, name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let input = try dir.write(bytes, to: name)
        let result = try runCLI(["convert", input, "-o", dir.file(name + ".safetensors")])
        XCTAssertEqual(result.status, 65, result.stderr, file: file, line: line)
        XCTAssertTrue(result.stderr.hasPrefix("clipsafety: \(input): "), result.stderr, file: file, line: line)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.file(name + ".safetensors")), file: file, line: line)
        XCTAssertFalse(FileManager.default.fileExists(atPath: marker), "a payload ran", file: file, line: line)
    }
}

/// The `clipsafety` executable built next to the test bundle.
func runCLI(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
    let candidates = [Bundle.main.executableURL, Bundle(for: TorchPickleTests.self).bundleURL]
        .compactMap { $0?.deletingLastPathComponent().appendingPathComponent("clipsafety").path }
    guard let exe = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
        XCTFail("clipsafety executable not found next to the tests (looked in \(candidates))")
        throw CocoaError(.fileNoSuchFile)
    }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: exe)
    process.arguments = arguments
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
}
