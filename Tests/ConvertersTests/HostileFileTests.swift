import Foundation
import XCTest
import TestSupport
import Runtime
@testable import Converters

/// Hostile and broken inputs for every reader (issue 8): code execution through pickles,
/// resource exhaustion (bombs, huge declared sizes, opcode floods), lying sizes and handles,
/// malformed wire formats, and every upstream file cut short or with flipped bits. Each test
/// asserts a ClipSafetyError of the right kind; a trap ends the process and fails the run.
/// Cases other suites already cover (TorchPickleTests, SafetensorsTests, NpyTests, NpzTests,
/// SavedModelConverterTests, KerasH5Tests, KerasV3Tests) are not repeated here.
final class HostileFileTests: XCTestCase {
    var dir: TemporaryDirectory!
    var marker: String!

    override func setUpWithError() throws {
        dir = try TemporaryDirectory()
        marker = dir.file("pwned")
    }

    override func tearDown() {
        XCTAssertFalse(FileManager.default.fileExists(atPath: marker), "a payload ran")
        dir.remove()
    }

    private func torch(_ bytes: Data, limits: ReaderLimits = .init()) throws -> NativeModel {
        try convertModel(bytes: bytes, options: ConversionOptions(fileName: "hostile.pth", limits: limits))
    }

    /// Both torch containers around one state dict whose first value `payload` writes.
    private func bothContainers(_ payload: @escaping (inout TorchPickleBuilder) -> Void) throws -> [(String, Data)] {
        let zipPickle = TorchFixtures.stateDictPickle(TorchFixtures.smallHead, legacy: false, hostileValue: payload)
        let legacyPickle = TorchFixtures.stateDictPickle(TorchFixtures.smallHead, legacy: true, hostileValue: payload)
        return [("zip", try TorchFixtures.zip(pickle: zipPickle, storages: TorchFixtures.smallStorages, in: dir)),
                ("legacy", TorchFixtures.legacy(pickle: legacyPickle, storages: TorchFixtures.smallLegacyStorages))]
    }

    // MARK: - Pickle: code execution by every route

    func testRefusesObjOpcodeInBothContainers() throws {
        for (kind, bytes) in try bothContainers({ p in
            p.mark()
            p.global("collections", "OrderedDict")
            p.raw(0x6F)  // OBJ: would call the class with the arguments after MARK
        }) {
            assertClipSafetyError([.unsafe], containing: "OBJ", kind) { try self.torch(bytes) }
        }
    }

    func testRefusesInstOpcodeInTheLegacyContainer() throws {
        for (kind, bytes) in try bothContainers({ p in
            p.mark()
            p.string("touch \(self.marker!)")
            p.raw(0x69)  // INST os\nsystem\n
            p.bytes += Array("os\nsystem\n".utf8)
        }) {
            assertClipSafetyError([.unsafe], containing: "INST", kind) { try self.torch(bytes) }
        }
    }

    func testRefusesNewObjOfAClassOutsideTheAllowlistInBothContainers() throws {
        for (kind, bytes) in try bothContainers({ p in
            p.global("subprocess", "Popen")
            p.string("touch \(self.marker!)")
            p.tuple1()
            p.raw(0x81)  // NEWOBJ
        }) {
            assertClipSafetyError([.unsafe], containing: "subprocess.Popen", kind) { try self.torch(bytes) }
        }
    }

    func testRefusesNewObjOfAnAllowlistedClassOtherThanOrderedDict() throws {
        for (kind, bytes) in try bothContainers({ p in
            p.global("torch", "FloatStorage")
            p.int(4)
            p.tuple1()
            p.raw(0x81)
        }) {
            assertClipSafetyError([.malformed], containing: "NEWOBJ", kind) { try self.torch(bytes) }
        }
    }

    func testRefusesBuildOnAGlobalInBothContainers() throws {
        // BUILD would call __setstate__ (or update __dict__) of the object it targets.
        for (kind, bytes) in try bothContainers({ p in
            p.global("torch._utils", "_rebuild_tensor_v2")
            p.emptyDict()
            p.build()
        }) {
            assertClipSafetyError([.malformed], containing: "BUILD", kind) { try self.torch(bytes) }
        }
    }

    func testRefusesBuildWhoseStateCallsAGlobalInBothContainers() throws {
        for (kind, bytes) in try bothContainers({ p in
            p.global("collections", "OrderedDict")
            p.emptyTuple()
            p.reduce()
            p.global("builtins", "exec")
            p.string("open('\(self.marker!)', 'w')")
            p.tuple1()
            p.reduce()
            p.build()
        }) {
            assertClipSafetyError([.unsafe], containing: "builtins.exec", kind) { try self.torch(bytes) }
        }
    }

    func testRefusesNewObjExAndExtensionRegistryOpcodes() throws {
        let opcodes: [(UInt8, [UInt8], String)] = [(0x92, [], "NEWOBJEX"), (0x82, [1], "EXT1"), (0x83, [1, 0], "EXT2"), (0x84, [1, 0, 0, 0], "EXT4")]
        for (op, operand, name) in opcodes {
            for (kind, bytes) in try bothContainers({ p in
                p.global("collections", "OrderedDict")
                p.emptyTuple()
                p.emptyDict()
                p.raw(op)
                p.bytes += operand
            }) {
                assertClipSafetyError([.unsafe], containing: name, "\(name) \(kind)") { try self.torch(bytes) }
            }
        }
    }

    func testRefusesAGlobalThatSmugglesANewlineOrDotsIntoTheName() throws {
        for (kind, bytes) in try bothContainers({ p in
            p.string("collections")
            p.string("OrderedDict.__init__.__globals__")
            p.stackGlobal()
        }) {
            assertClipSafetyError([.unsafe], containing: "OrderedDict.__init__", kind) { try self.torch(bytes) }
        }
    }

    // MARK: - Pickle: exhaustion

    private func floodPickle(_ op: UInt8, count: Int) -> Data {
        var p = TorchPickleBuilder()
        p.none()
        p.bytes += [UInt8](repeating: op, count: count)
        p.stop()
        return p.data
    }

    func testRefusesADupFloodBeforeItFillsMemory() throws {
        // 4 MB of DUP would put 4 million values on the stack (and a deflated data.pkl of
        // 128 MiB of them fits in a 130 kB file).
        let start = Date()
        assertClipSafetyError([.limitExceeded], containing: "opcodes") {
            try TorchPickleReader.read(bytes: self.floodPickle(0x32, count: 4 << 20), limits: ReaderLimits())
        }
        XCTAssertLessThan(Date().timeIntervalSince(start), 20)
    }

    func testRefusesAMemoizeAndMarkFlood() throws {
        var limits = ReaderLimits()
        limits.maxPickleOperations = 1000
        for op: UInt8 in [0x94, 0x28] {  // MEMOIZE, MARK
            assertClipSafetyError([.limitExceeded], containing: "more than 1000 opcodes") {
                try TorchPickleReader.read(bytes: self.floodPickle(op, count: 5000), limits: limits)
            }
        }
    }

    func testRefusesADupFloodInsideAZipCheckpoint() throws {
        let flood = floodPickle(0x32, count: 2 << 20)
        let zip = HostileZip.archive([
            .init(name: "m/data.pkl", payload: flood),
            .init(name: "m/version", payload: Data("3\n".utf8)),
        ])
        assertClipSafetyError([.limitExceeded], containing: "opcodes") { try self.torch(zip) }
    }

    // MARK: - Pickle: element counts and storages

    func testRefusesAPersistentIdDeclaringBillionsOfElements() throws {
        var t = TorchFixtures.smallHead
        t[0].storageNumel = Int(Int32.max)
        let zip = try TorchFixtures.zip(pickle: TorchFixtures.stateDictPickle(t, legacy: false), storages: TorchFixtures.smallStorages, in: dir)
        // The declared count is checked against the record the file holds, before anything is
        // read or allocated from it.
        assertClipSafetyError([.malformed], containing: "declares 2147483647 float32 elements") { try self.torch(zip) }
        let legacy = TorchFixtures.legacy(pickle: TorchFixtures.stateDictPickle(t, legacy: true), storages: TorchFixtures.smallLegacyStorages)
        assertClipSafetyError([.malformed], containing: "its persistent id declares 2147483647") { try self.torch(legacy) }
    }

    func testRefusesAShapeWhoseElementCountOverflows() throws {
        var t = TorchFixtures.smallHead
        let big = Int(Int32.max)
        t[0].shape = [big, big, big]
        t[0].stride = [1, 1, 1]
        for legacy in [false, true] {
            let pickle = TorchFixtures.stateDictPickle(t, legacy: legacy)
            let bytes = legacy
                ? TorchFixtures.legacy(pickle: pickle, storages: TorchFixtures.smallLegacyStorages)
                : try TorchFixtures.zip(pickle: pickle, storages: TorchFixtures.smallStorages, in: dir)
            assertClipSafetyError([.malformed, .limitExceeded], containing: "fc.weight") { try self.torch(bytes) }
        }
    }

    func testRefusesALegacyStorageCountLargerThanTheFile() throws {
        var t = TorchFixtures.smallHead
        t[0].storageNumel = 30_000_000  // under the element limit, far over the bytes present
        t[0].shape = [2, 3]
        let legacy = TorchFixtures.legacy(pickle: TorchFixtures.stateDictPickle(t, legacy: true),
                                          storages: [("0", 30_000_000, TorchFixtures.floatBytes(TorchFixtures.weights)),
                                                     ("1", 2, TorchFixtures.floatBytes(TorchFixtures.bias))])
        assertClipSafetyError([.truncated, .malformed], containing: "storage '0'") { try self.torch(legacy) }
    }

    // MARK: - Zip archives

    func testRefusesAMemberDeclaringGigabytesBeforeInflatingIt() throws {
        let start = Date()
        let bomb = HostileZip.deflatedZeros(matches: 4_161_000)  // 1 GiB of zeros in 6.8 MB
        let zip = HostileZip.archive([
            .init(name: "m/version", payload: Data("3\n".utf8)),
            .init(name: "m/data.pkl", method: 8, payload: bomb, uncompressedSize: UInt32(1 + 258 * 4_161_000), crc: 0),
        ])
        assertClipSafetyError([.limitExceeded], containing: "uncompressed limit") { try self.torch(zip) }
        assertClipSafetyError([.limitExceeded], containing: "uncompressed limit") {
            try NpzArchive.read(bytes: HostileZip.archive([.init(name: "a.npy", method: 8, payload: bomb, uncompressedSize: UInt32(1 + 258 * 4_161_000), crc: 0)]))
        }
        XCTAssertLessThan(Date().timeIntervalSince(start), 30)
    }

    func testStopsAZipBombThatUnderstatesItsSizeAtTheDeclaredSize() throws {
        // The headers say 4 kB; the stream inflates to 1 GiB. Reading stops one chunk past 4 kB.
        let bomb = HostileZip.deflatedZeros(matches: 4_161_000)
        let zip = HostileZip.archive([
            .init(name: "m/version", payload: Data("3\n".utf8)),
            .init(name: "m/data.pkl", method: 8, payload: bomb, uncompressedSize: 4096, crc: 0),
        ])
        let start = Date()
        assertClipSafetyError([.malformed], containing: "m/data.pkl") { try self.torch(zip) }
        XCTAssertLessThan(Date().timeIntervalSince(start), 2, "inflated far past the declared size")
    }

    func testReadsAHandWrittenDeflateStream() throws {
        // The bomb builder is right: a small stream of it inflates to exactly its zeros.
        let zeros = Data(count: 1 + 258 * 40)
        let zip = HostileZip.archive([.init(name: "z", method: 8, payload: HostileZip.deflatedZeros(matches: 40),
                                            uncompressedSize: UInt32(zeros.count), crc: HostileZip.crc32(zeros))])
        let archive = try ZipArchive(bytes: zip)
        XCTAssertEqual(try archive.read(named: "z"), zeros)
    }

    func testCapsUncompressedBytesAcrossMembers() throws {
        var limits = ReaderLimits()
        limits.maxUncompressedBytes = 1000
        let zip = HostileZip.archive([.init(name: "a.npy", payload: Data(count: 600)), .init(name: "b.npy", payload: Data(count: 600))])
        let archive = try ZipArchive(bytes: zip, limits: limits)
        XCTAssertEqual(try archive.read(named: "a.npy")?.count, 600)
        assertClipSafetyError([.limitExceeded], containing: "b.npy") { try archive.read(named: "b.npy") as Any }
    }

    func testRefusesAMemberWhoseChecksumDoesNotMatch() throws {
        let payload = Data("3\n".utf8)
        let zip = HostileZip.archive([.init(name: "m/version", payload: payload, crc: HostileZip.crc32(payload) ^ 1)])
        let archive = try ZipArchive(bytes: zip)
        assertClipSafetyError([.malformed], containing: "m/version") { try archive.read(named: "m/version") as Any }
    }

    func testRefusesUnsafeEntryNamesInEveryZipFormat() throws {
        let names = ["../data.pkl", "m/../../data.pkl", "/etc/data.pkl", "\\evil\\data.pkl", "C:/data.pkl", "m\\..\\data.pkl",
                     "../config.json", "/model.weights.h5", "../a.npy", "../saved_model.pb"]
        for name in names {
            let zip = HostileZip.archive([.init(name: name, payload: Data("x".utf8)), .init(name: "m/version", payload: Data("3\n".utf8))])
            assertClipSafetyError([.unsafe], containing: "entry", name) { try ZipArchive(bytes: zip) }
            assertClipSafetyError([.unsafe], name) { try self.torch(zip) }
            assertClipSafetyError([.unsafe], name) { try convertModel(bytes: zip, options: ConversionOptions(fileName: "k.keras")) }
            assertClipSafetyError([.unsafe], name) { try convertModel(bytes: zip, options: ConversionOptions(fileName: "s.zip")) }
            assertClipSafetyError([.unsafe], name) { try NpzArchive.read(bytes: zip) }
        }
        // Nothing is ever extracted: the scratch folder holds only what the test put there.
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), [])
    }

    // MARK: - Protobuf wire format

    private func decodeEverySavedModelMessage(_ bytes: Data, _ label: String, header: Bool = true, file: StaticString = #filePath, line: UInt = #line) {
        let limits = ReaderLimits()
        assertClipSafetyError([], label, file: file, line: line) { try SavedModelProtobuf.decode(Tensorflow_BundleEntryProto.self, from: bytes, what: "e", limits: limits) }
        if header {
            assertClipSafetyError([], label, file: file, line: line) { try SavedModelProtobuf.decode(Tensorflow_BundleHeaderProto.self, from: bytes, what: "h", limits: limits) }
        }
        assertClipSafetyError([], label, file: file, line: line) { try SavedModelProtobuf.decode(Tensorflow_SavedModel.self, from: bytes, what: "s", limits: limits) }
    }

    func testRefusesMalformedProtobufVarintsAndLengths() {
        var overlong = Data([0x08]); overlong.append(Data(repeating: 0xff, count: 10)); overlong.append(0x01)
        decodeEverySavedModelMessage(overlong, "11-byte varint")
        decodeEverySavedModelMessage(Data([0x08, 0x80]), "varint cut short")
        decodeEverySavedModelMessage(Data([0x12, 0x7f, 0x00]), "length past the end")
        var huge = Data([0x12]); huge.varint(UInt64.max >> 1)
        decodeEverySavedModelMessage(huge, "length of 2^63")
        decodeEverySavedModelMessage(Data([0x0e, 0x00]), "wire type 6")
        decodeEverySavedModelMessage(Data([0x00, 0x00]), "field number 0")
        decodeEverySavedModelMessage(Data([0x0d, 0x01, 0x02]), "fixed32 cut short")
        // Nested: a shape whose dim has a length running past the shape's own end. (Field 2 of
        // the bundle header is a scalar enum, which this does not reach.)
        var p = ProtoBytes(); p.bytesField(2, Data([0x12, 0x09, 0x08, 0x01]))
        decodeEverySavedModelMessage(p.data, "nested length past its parent", header: false)
    }

    func testRefusesASavedModelZipWhoseProtobufMembersAreMalformed() throws {
        let real = try Data(contentsOf: URL(fileURLWithPath: try Fixtures.modelFile("clip_autokeras_nsfw_b32.zip")))
        let members = try ZipArchive(bytes: real).entries.filter { $0.uncompressedSize > 0 }
        let archive = try ZipArchive(bytes: real)
        let contents = try members.map { (name: $0.name, data: try archive.read($0)) }
        var overlong = Data([0x0a]); overlong.append(Data(repeating: 0xff, count: 11))
        for target in ["saved_model.pb", "keras_metadata.pb"] {
            for garbage in [overlong, Data([0x0a, 0x7f, 0x01]), Data([0x0f])] {
                let path = dir.file("sm-\(UUID().uuidString).zip")
                try ZipArchive.write(members: contents.map { ($0.name, $0.name.hasSuffix(target) ? garbage : $0.data) }, to: path)
                let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
                assertClipSafetyError([.malformed, .truncated], target) {
                    try convertModel(bytes: bytes, options: ConversionOptions(fileName: "x.zip"))
                }
            }
        }
    }

    // MARK: - SSTable and tensor bundle

    private let key = Data("dense/kernel/.ATTRIBUTES/VARIABLE_VALUE".utf8)

    func testSSTableFixtureIsReadable() throws {
        let table = SSTableFixture.table([(Data(), Data("h".utf8)), (key, Data("v".utf8))])
        XCTAssertEqual(try SSTableReader(bytes: table, limits: ReaderLimits()).entries.map(\.value), [Data("h".utf8), Data("v".utf8)])
    }

    func testSSTableRefusesFooterHandlesOutOfRange() {
        let cases: [(String, ((meta: (UInt64, UInt64), index: (UInt64, UInt64))) -> Data)] = [
            ("index past the file", { SSTableFixture.footer(meta: SSTableFixture.handle($0.meta.0, $0.meta.1), index: SSTableFixture.handle(1 << 40, 10)) }),
            ("index size of 2^62", { SSTableFixture.footer(meta: SSTableFixture.handle($0.meta.0, $0.meta.1), index: SSTableFixture.handle($0.index.0, 1 << 62)) }),
            ("index into the footer", { SSTableFixture.footer(meta: SSTableFixture.handle($0.meta.0, $0.meta.1), index: SSTableFixture.handle($0.index.0 + $0.index.1 + 5, 8)) }),
            ("offset + size overflowing", { SSTableFixture.footer(meta: SSTableFixture.handle($0.meta.0, $0.meta.1), index: SSTableFixture.handle(UInt64(Int.max), UInt64(Int.max))) }),
            ("handles running into the magic", { _ in
                var f = Data(repeating: 0xff, count: 40)
                f.le64(SSTableReader.magic)
                return f
            }),
        ]
        for (label, footer) in cases {
            let table = SSTableFixture.table([(key, Data("v".utf8))], footerHandles: footer)
            assertClipSafetyError([.malformed, .truncated], label) { try SSTableReader(bytes: table, limits: ReaderLimits()) }
        }
    }

    func testSSTableRefusesDataHandlesOutOfRange() {
        let cases: [(String, ((UInt64, UInt64)) -> Data)] = [
            ("past the file", { _ in SSTableFixture.handle(1 << 50, 16) }),
            ("over the index block", { h in SSTableFixture.handle(h.0, h.1 + 64) }),
            ("size of 2^63 - 1", { h in SSTableFixture.handle(h.0, UInt64(Int.max)) }),
            ("not a handle", { _ in Data([0xff, 0xff]) }),
            ("trailing bytes", { h in SSTableFixture.handle(h.0, h.1) + Data([0]) }),
        ]
        for (label, value) in cases {
            let table = SSTableFixture.table([(key, Data("v".utf8))], indexValue: value)
            assertClipSafetyError([.malformed, .truncated], label) { try SSTableReader(bytes: table, limits: ReaderLimits()) }
        }
    }

    private func bundle(_ entries: [(Data, Data)], shard: Data, limits: ReaderLimits = .init()) throws -> TensorBundleReader {
        let table = SSTableFixture.table([(Data(), ProtoBytes.bundleHeader())] + entries)
        return try TensorBundleReader(index: table, shards: [shard], limits: limits)
    }

    func testBundleFixtureIsReadable() throws {
        let shard = TorchFixtures.floatBytes([1, 2, 3, 4])
        let entry = ProtoBytes.bundleEntry(shape: [2, 2], offset: 0, size: 16, crc: CRC32C.mask(CRC32C.checksum(shard)))
        let t = try bundle([(key, entry)], shard: shard).tensor(String(decoding: key, as: UTF8.self), as: "w")
        XCTAssertEqual(try t.floatValues(), [1, 2, 3, 4])
    }

    func testBundleRefusesEntriesThatLieAboutTheirBytes() {
        let shard = TorchFixtures.floatBytes([1, 2, 3, 4])
        let crc = CRC32C.mask(CRC32C.checksum(shard))
        let cases: [(String, Data, ClipSafetyError.Kind)] = [
            ("past the shard", ProtoBytes.bundleEntry(shape: [4], offset: 8, size: 16, crc: crc), .malformed),
            ("offset of 2^62", ProtoBytes.bundleEntry(shape: [4], offset: 1 << 62, size: 16, crc: crc), .truncated),
            ("shard 7 of 1", ProtoBytes.bundleEntry(shape: [4], shard: 7, offset: 0, size: 16, crc: crc), .malformed),
            ("shape overflowing", ProtoBytes.bundleEntry(shape: [1 << 40, 1 << 40], offset: 0, size: 16, crc: crc), .malformed),
            ("negative dimension", ProtoBytes.bundleEntry(shape: [-4], offset: 0, size: 16, crc: crc), .malformed),
            ("size not the shape's", ProtoBytes.bundleEntry(shape: [3], offset: 0, size: 16, crc: crc), .malformed),
            ("elements over the limit", ProtoBytes.bundleEntry(shape: [1 << 30], offset: 0, size: 1 << 32, crc: crc), .limitExceeded),
            ("flipped checksum", ProtoBytes.bundleEntry(shape: [4], offset: 0, size: 16, crc: crc ^ 0x100), .malformed),
            ("string tensor lengths past the data", ProtoBytes.bundleEntry(dtype: 7, shape: [1 << 20], offset: 0, size: 16, crc: crc), .malformed),
            ("malformed protobuf", Data([0x08, 0xff, 0xff]), .malformed),
        ]
        for (label, entry, kind) in cases {
            let failure = assertClipSafetyError([], label) { try self.bundle([(self.key, entry)], shard: shard) }
            if let failure, failure.kind != kind, !(kind == .malformed && failure.kind == .truncated) {
                XCTFail("\(label): \(failure.kind) \(failure.message)")
            }
        }
    }

    func testBundleCapsTheBytesItChecksumsWhenEntriesShareThem() throws {
        // 200 index entries over the same 1 MB would checksum 200 MB; the cap stops at 4 MB.
        var limits = ReaderLimits()
        limits.maxUncompressedBytes = 4 << 20
        let shard = Data(count: 1 << 20)
        let crc = CRC32C.mask(CRC32C.checksum(shard))
        let entries = (0..<200).map { i in
            (Data(String(format: "t%04d", i).utf8), ProtoBytes.bundleEntry(dtype: 4, shape: [1 << 20], offset: 0, size: 1 << 20, crc: crc))
        }
        let start = Date()
        assertClipSafetyError([.limitExceeded], containing: "--max-uncompressed-bytes") { try self.bundle(entries, shard: shard, limits: limits) }
        XCTAssertLessThan(Date().timeIntervalSince(start), 10)
    }

    // MARK: - HDF5

    func testKerasH5CapsTheTotalOfDatasetValuesNotOnlyEachOne() throws {
        // Each dataset is under every per-dataset limit; together they pass the total.
        var limits = ReaderLimits()
        limits.maxUncompressedBytes = 100
        let bytes = try KerasFixture.legacyH5([.dense("a", inputs: 4, units: 4), .dense("b", inputs: 4, units: 4)], width: 4)
        XCTAssertNoThrow(try convertModel(bytes: bytes, options: ConversionOptions(fileName: "m.h5")))
        assertClipSafetyError([.limitExceeded], containing: "100 bytes") {
            try convertModel(bytes: bytes, options: ConversionOptions(fileName: "m.h5", limits: limits))
        }
    }

    func testRefusesAnAttributeNameWithoutItsNulBeforeLibHDF5ReadsIt() throws {
        // Found by fuzz-hdf5: libhdf5 1.10 strdup()s attribute names, reading past the object
        // header when a name has no NUL inside it (ASan: heap-buffer-overflow in H5MM_strdup,
        // under H5Aexists). The same break, made by hand in the upstream file: the root group's
        // `keras_version` attribute (v1 message at 832: name of 14 bytes at 840) loses its NUL.
        var bytes = try Data(contentsOf: URL(fileURLWithPath: try Fixtures.modelFile("clip_autokeras_nsfw_b32_dense.h5")))
        XCTAssertEqual(Data(bytes[840..<854]), Data("keras_version".utf8) + Data([0]))
        XCTAssertNoThrow(try convertModel(bytes: bytes, options: ConversionOptions(fileName: "m.h5")))
        bytes[853] = UInt8(ascii: "x")
        assertClipSafetyError([.malformed], containing: "name that does not end inside it") {
            try convertModel(bytes: bytes, options: ConversionOptions(fileName: "m.h5"))
        }
        // An attribute whose name, type and shape sizes add up to more than its message.
        bytes[853] = 0
        bytes[836] = 0xff; bytes[837] = 0x7f  // datatype size 32767
        assertClipSafetyError([.malformed], containing: "larger than the message") {
            try convertModel(bytes: bytes, options: ConversionOptions(fileName: "m.h5"))
        }
    }

    func testRefusesObjectHeadersLargerThanTheFileBeforeLibHDF5AllocatesThem() throws {
        // Found by fuzz-any: libhdf5 allocated a root object header's declared 4 GiB before
        // finding that it runs past the end of the file.
        let found = try Data(contentsOf: URL(fileURLWithPath: Fixtures.repoRoot + "/Tests/Fixtures/hostile/hdf5-header-declaring-4gib.h5"))
        assertClipSafetyError([.malformed], containing: "object header at 96") {
            try convertModel(bytes: found, options: ConversionOptions(fileName: "m.h5"))
        }
        // By hand: the upstream file's root header (version 1, at 96) declares 4 GiB - 16.
        var bytes = try Data(contentsOf: URL(fileURLWithPath: try Fixtures.modelFile("clip_autokeras_nsfw_b32_dense.h5")))
        bytes.replaceSubrange(104..<108, with: [0xf0, 0xff, 0xff, 0xff])
        assertClipSafetyError([.malformed], containing: "lies outside the file") {
            try convertModel(bytes: bytes, options: ConversionOptions(fileName: "m.h5"))
        }
    }

    func testRefusesALocalHeapLargerThanTheFileBeforeLibHDF5AllocatesIt() throws {
        // Found by fuzz-any: a group's local heap (its link names) declared a 4 GiB data
        // segment, which libhdf5 allocated before checking it. Here the upstream file's first
        // local heap (at 680; data size at 688) declares 4 GiB - 1.
        var bytes = try Data(contentsOf: URL(fileURLWithPath: try Fixtures.modelFile("clip_autokeras_nsfw_b32_dense.h5")))
        XCTAssertEqual(Data(bytes[680..<684]), Data("HEAP".utf8))
        bytes.replaceSubrange(688..<696, with: [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0])
        assertClipSafetyError([.malformed], containing: "local heap at address 680") {
            try convertModel(bytes: bytes, options: ConversionOptions(fileName: "m.h5"))
        }
    }

    // MARK: - Every upstream file, cut short and bit-flipped

    static let upstreamFiles = [
        "clip_autokeras_nsfw_b32.zip", "clip_autokeras_binary_nsfw.zip",
        "clip_autokeras_nsfw_b32_dense.h5", "clip_autokeras_binary_nsfw_dense.h5",
        "clip_autokeras_nsfw_b32_dense.keras", "clip_autokeras_binary_nsfw_dense.keras",
        "clip_ViT-B-32_openai_binary_nsfw_head.pth", "clip_ViT-L-14_openai_binary_nsfw_head.pth",
        "h14_nsfw.pth", "h14_nsfw_legacy.pth",
        "violence_detection_vit_b_32.npy", "violence_detection_vit_l_14.npy",
    ]

    /// The converter ModelLoader would pick for an upstream file (dispatched by name here:
    /// these tests run without the Inspect module).
    static func convertUpstream(_ bytes: Data, name: String) throws -> NativeModel {
        let options = ConversionOptions(fileName: name)
        switch (name as NSString).pathExtension {
        case "zip": return try convertModel(bytes: bytes, options: options)
        case "h5": return try convertModel(bytes: bytes, options: options)
        case "keras": return try convertModel(bytes: bytes, options: options)
        case "pth": return try convertModel(bytes: bytes, options: options)
        default: return try convertModel(bytes: bytes, options: options)
        }
    }

    /// Zip records: (local header offset, data start, data end, name) from the central directory.
    static func zipRecords(_ bytes: Data) -> [(header: Int, start: Int, end: Int, name: String)] {
        var records: [(Int, Int, Int, String)] = []
        let b = [UInt8](bytes)
        func u16(_ i: Int) -> Int { Int(b[i]) | Int(b[i + 1]) << 8 }
        func u32(_ i: Int) -> Int { u16(i) | u16(i + 2) << 16 }
        var i = 0
        while i + 46 <= b.count {
            if b[i] == 0x50, b[i + 1] == 0x4b, b[i + 2] == 1, b[i + 3] == 2 {
                let size = u32(i + 20), nameLength = u16(i + 28), extra = u16(i + 30), comment = u16(i + 32), local = u32(i + 42)
                let name = String(decoding: b[(i + 46)..<(i + 46 + nameLength)], as: UTF8.self)
                let start = local + 30 + u16(local + 26) + u16(local + 28)
                records.append((local, start, start + size, name))
                i += 46 + nameLength + extra + comment
            } else {
                i += 1
            }
        }
        return records
    }

    /// Offsets where a structure of the file begins or ends.
    static func boundaries(_ bytes: Data, name: String) -> [Int] {
        var cuts: [Int] = []
        let b = [UInt8](bytes)
        if b.starts(with: [0x50, 0x4b, 3, 4]) {
            for r in zipRecords(bytes) { cuts += [r.header, r.header + 30, r.start, r.end] }
            var i = 0
            while i + 4 <= b.count {  // central directory records and its end
                if b[i] == 0x50, b[i + 1] == 0x4b, (b[i + 2] == 1 && b[i + 3] == 2) || (b[i + 2] == 5 && b[i + 3] == 6) { cuts.append(i) }
                i += 1
            }
        } else if b.starts(with: [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]) {
            cuts += [6, 8, 10, 10 + (Int(b[8]) | Int(b[9]) << 8)]
        } else if b.starts(with: [0x89, 0x48, 0x44, 0x46]) {
            cuts += [8, 9, 12, 24, 48, 96]  // signature, versions, sizes, addresses, root entry
        } else {
            // Legacy torch: the end of each of the five pickles, then each storage's count.
            var cursor = ByteCursor(bytes)
            for _ in 0..<5 {
                guard (try? TorchPickleReader.read(&cursor, limits: ReaderLimits())) != nil else { break }
                cuts.append(cursor.offset)
            }
            cuts.append(cursor.offset + 8)
        }
        return cuts
    }

    func testEveryUpstreamFileCutAtItsSectionBoundariesIsRefused() throws {
        for name in Self.upstreamFiles {
            let bytes = try Data(contentsOf: URL(fileURLWithPath: try Fixtures.modelFile(name)))
            let n = bytes.count
            var cuts = Set(Self.boundaries(bytes, name: name).flatMap { [$0 - 1, $0, $0 + 1] })
            for k in 0..<48 { cuts.insert(n * k / 48) }
            cuts.formUnion([0, 1, n - 22, n - 1])
            XCTAssertGreaterThan(cuts.count, 40, name)
            for cut in cuts.sorted() where cut >= 0 && cut < n {
                assertClipSafetyError([], "\(name) cut at \(cut) of \(n)") { try Self.convertUpstream(bytes.prefix(cut), name: name) }
            }
        }
    }

    /// Members a converter reads (their bytes are covered by the zip's CRC-32).
    static func isReadMember(_ name: String) -> Bool {
        let read = ["data.pkl", "/version", "/byteorder", "saved_model.pb", "keras_metadata.pb", "variables.index",
                    "config.json", "metadata.json", "model.weights.h5"]
        return read.contains { name.hasSuffix($0) } || name.contains("/data/") || name.contains("variables.data-")
    }

    func testBitFlipsInUpstreamFilesNeverTrapAndChecksummedOnesAreCaught() throws {
        var rng = SplitMix(seed: 8)
        for name in Self.upstreamFiles {
            let bytes = try Data(contentsOf: URL(fileURLWithPath: try Fixtures.modelFile(name)))
            let readRanges = Self.zipRecords(bytes).filter { Self.isReadMember($0.name) && $0.end > $0.start }
            var positions = (0..<24).map { _ in Int(rng.next() % UInt64(bytes.count)) }
            for r in readRanges.prefix(6) { positions.append(r.start + Int(rng.next() % UInt64(r.end - r.start))) }
            for position in positions {
                var flipped = bytes
                flipped[position] ^= UInt8(1) << UInt8(rng.next() % 8)
                let checksummed = readRanges.contains { $0.start <= position && position < $0.end }
                do {
                    _ = try Self.convertUpstream(flipped, name: name)
                    XCTAssertFalse(checksummed, "\(name): a flip at \(position), inside checksummed data, went unnoticed")
                } catch is ClipSafetyError {
                } catch {
                    XCTFail("\(name) flip at \(position): not a ClipSafetyError: \(error)")
                }
            }
        }
    }
}

/// A small deterministic generator (SplitMix64), so failures reproduce.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}
