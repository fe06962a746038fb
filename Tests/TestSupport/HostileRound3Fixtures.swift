import Foundation
import Runtime

/// The third round of hostile files (issue 20, point 7) that need no HDF5 or Keras writer:
/// pickles, zip archives, `.npy` headers and native graphs, built byte by byte so that both the
/// reader tests and the CLI contract tests run the same bytes.
public enum HostileRound3 {
    /// What the contract expects of a fixture.
    public enum Outcome: Equatable, Sendable {
        /// Refused by `convert` (exit 65, one line).
        case refused
        /// Valid: read without error (`inspect` exits 0).
        case readable
    }

    public struct Fixture: Sendable {
        public var name: String
        public var bytes: Data
        public var outcome: Outcome
        /// Text the one-line refusal must contain.
        public var reason: String

        public init(name: String, bytes: Data, outcome: Outcome, reason: String) {
            self.name = name
            self.bytes = bytes
            self.outcome = outcome
            self.reason = reason
        }
    }

    // MARK: - Zip archives written field by field

    /// A member of a hand-written zip: every header field can lie.
    public struct ZipMember: Sendable {
        public var name: String
        public var data: Data
        /// The name the local header carries, when it differs from the central directory's.
        public var localName: String?
        public var flags: UInt16 = 0
        /// `version made by` high byte 3 (Unix) and these mode bits in the external attributes.
        public var unixMode: UInt32?
        /// Extra field of both headers.
        public var extra = Data()
        /// Replace the 32-bit sizes by 0xffffffff (a zip64 extra then gives them).
        public var zip64Sizes = false
        /// Deflated member: `data` is the raw deflate stream of `inflated` bytes with this CRC.
        public var deflated: (size: Int, crc: UInt32)?

        public init(_ name: String, _ data: Data) {
            self.name = name
            self.data = data
        }
    }

    public static func zip(_ members: [ZipMember]) -> Data {
        var out = Data()
        var central = Data()
        for m in members {
            let offset = UInt32(out.count)
            let crc = m.deflated?.crc ?? crc32(m.data)
            let size: UInt32 = m.zip64Sizes ? 0xffff_ffff : UInt32(m.data.count)
            let inflated: UInt32 = m.zip64Sizes ? 0xffff_ffff : UInt32(m.deflated?.size ?? m.data.count)
            func common(_ d: inout Data, name: Data) {
                d.le16(m.zip64Sizes ? 45 : 20); d.le16(m.flags); d.le16(m.deflated == nil ? 0 : 8); d.le16(0); d.le16(0x21)
                d.le32(crc); d.le32(size); d.le32(inflated)
                d.le16(UInt16(name.count)); d.le16(UInt16(m.extra.count))
            }
            let localName = Data((m.localName ?? m.name).utf8)
            out.le32(0x0403_4b50)
            common(&out, name: localName)
            out.append(localName)
            out.append(m.extra)
            out.append(m.data)
            let name = Data(m.name.utf8)
            central.le32(0x0201_4b50)
            central.le16(m.unixMode == nil ? 20 : (3 << 8 | 20))
            common(&central, name: name)
            central.le16(0); central.le16(0); central.le16(0)
            central.le32((m.unixMode ?? 0) << 16)
            central.le32(offset)
            central.append(name)
            central.append(m.extra)
        }
        let cdOffset = UInt32(out.count)
        out.append(central)
        if members.count > 0xffff {  // zip64 end of central directory record and locator
            let record = UInt64(out.count)
            out.le32(0x0606_4b50); out.le64(44); out.le16(45); out.le16(45); out.le32(0); out.le32(0)
            out.le64(UInt64(members.count)); out.le64(UInt64(members.count))
            out.le64(UInt64(central.count)); out.le64(UInt64(cdOffset))
            out.le32(0x0706_4b50); out.le32(0); out.le64(record); out.le32(1)
        }
        out.le32(0x0605_4b50)
        out.le16(0); out.le16(0)
        let count = members.count > 0xffff ? UInt16(0xffff) : UInt16(members.count)
        out.le16(count); out.le16(count)
        out.le32(UInt32(central.count)); out.le32(cdOffset); out.le16(0)
        return out
    }

    /// A zip64 extended-information extra field (id 1) with uncompressed and compressed sizes.
    public static func zip64Extra(uncompressed: UInt64, compressed: UInt64) -> Data {
        var d = Data()
        d.le16(1); d.le16(16); d.le64(uncompressed); d.le64(compressed)
        return d
    }

    public static func crc32(_ data: Data) -> UInt32 {
        var table = [UInt32](repeating: 0, count: 256)
        for i in 0..<256 {
            var c = UInt32(i)
            for _ in 0..<8 { c = (c & 1) != 0 ? (c >> 1) ^ 0xedb8_8320 : c >> 1 }
            table[i] = c
        }
        var c: UInt32 = 0xffff_ffff
        for b in data { c = table[Int((c ^ UInt32(b)) & 0xff)] ^ (c >> 8) }
        return ~c
    }

    /// A raw deflate stream of `prefix` (one stored block) then `zeros` zero bytes (fixed
    /// Huffman: a literal 0, then back-references of 258 at distance 1), and its CRC-32.
    public static func deflated(prefix: Data, zeros: Int) -> (stream: Data, size: Int, crc: UInt32) {
        var out = Data([0x00])  // BFINAL 0, BTYPE 00, padded to the byte
        out.le16(UInt16(prefix.count)); out.le16(~UInt16(prefix.count))
        out.append(prefix)
        var acc: UInt64 = 0, bits = 0
        func put(_ value: UInt64, _ count: Int) {
            acc |= value << UInt64(bits); bits += count
            while bits >= 8 { out.append(UInt8(acc & 0xff)); acc >>= 8; bits -= 8 }
        }
        func code(_ c: UInt64, _ count: Int) {  // Huffman codes go most significant bit first
            var r: UInt64 = 0
            for i in 0..<count where c & (1 << UInt64(i)) != 0 { r |= 1 << UInt64(count - 1 - i) }
            put(r, count)
        }
        put(1, 1); put(1, 2)
        var left = zeros
        if left > 0 { code(0x30, 8); left -= 1 }  // literal 0
        while left >= 258 { code(0xC5, 8); code(0, 5); left -= 258 }  // length 258, distance 1
        while left > 0 { code(0x30, 8); left -= 1 }
        code(0, 7)  // end of block
        if bits > 0 { out.append(UInt8(acc & 0xff)) }
        // CRC of prefix + zeros, zeros folded in blocks.
        var table = [UInt32](repeating: 0, count: 256)
        for i in 0..<256 {
            var c = UInt32(i)
            for _ in 0..<8 { c = (c & 1) != 0 ? (c >> 1) ^ 0xedb8_8320 : c >> 1 }
            table[i] = c
        }
        var c: UInt32 = 0xffff_ffff
        for b in prefix { c = table[Int((c ^ UInt32(b)) & 0xff)] ^ (c >> 8) }
        for _ in 0..<zeros { c = table[Int(c & 0xff)] ^ (c >> 8) }
        return (out, prefix.count + zeros, ~c)
    }

    /// A reference `.npz` whose `inputs` are `rows` × `width` float32 zeros and whose `outputs`
    /// are `rows` × `outputs` zeros, both deflated (about 1/160 of their size).
    public static func zeroReference(rows: Int, width: Int, outputs: Int) -> Data {
        func member(_ name: String, _ shape: String, _ count: Int) -> ZipMember {
            let header = npy(header: "{'descr': '<f4', 'fortran_order': False, 'shape': \(shape), }", data: Data())
            let d = deflated(prefix: header, zeros: count * 4)
            var m = ZipMember(name, d.stream)
            m.deflated = (d.size, d.crc)
            return m
        }
        return zip([member("inputs.npy", "(\(rows), \(width))", rows * width), member("outputs.npy", "(\(rows), \(outputs))", rows * outputs)])
    }

    // MARK: - Torch checkpoints

    /// Pickle opcodes by hand.
    public struct Pickle {
        public var b: [UInt8] = [0x80, 0x02]
        public init(protocol v: UInt8 = 2) { b = [0x80, v] }
        public mutating func op(_ x: UInt8...) { b += x }
        public mutating func global(_ m: String, _ n: String) { b += [0x63] + Array("\(m)\n\(n)\n".utf8) }
        public mutating func str(_ s: String) { b += [0x58]; b += withUnsafeBytes(of: UInt32(s.utf8.count).littleEndian, Array.init); b += Array(s.utf8) }
        public mutating func int(_ v: Int) { b += [0x4A]; b += withUnsafeBytes(of: Int32(v).littleEndian, Array.init) }
        public mutating func ints(_ v: [Int]) { op(0x28); v.forEach { int($0) }; op(0x74) }
        public mutating func orderedDict() { global("collections", "OrderedDict"); op(0x29, 0x52) }

        /// `_rebuild_tensor_v2(storage(key, FloatStorage, numel), offset, shape, stride, False, OrderedDict())`
        /// or the v3 form with `torch.<v3>` as dtype.
        public mutating func tensor(key: String, storage: String = "FloatStorage", numel: Int, offset: Int = 0,
                                    shape: [Int], stride: [Int], v3: String? = nil) {
            global("torch._utils", v3 == nil ? "_rebuild_tensor_v2" : "_rebuild_tensor_v3")
            op(0x28)
            op(0x28); str("storage"); global("torch", storage); str(key); str("cpu"); int(numel); op(0x74, 0x51)
            int(offset); ints(shape); ints(stride); op(0x89); orderedDict()
            if let v3 { global("torch", v3) }
            op(0x74, 0x52)
        }

        public var data: Data { Data(b) }
    }

    public static func floats(_ v: [Float]) -> Data {
        var d = Data()
        for x in v { d.le32(x.bitPattern) }
        return d
    }

    /// A torch zip checkpoint around `pickle` with storages "0" (6 floats) and "1" (2 floats).
    public static func torchZip(_ pickle: Data, storages: [String: Data]? = nil) -> Data {
        let s = storages ?? ["0": floats([1, 2, 3, 4, 5, 6]), "1": floats([0.5, -0.5])]
        var members = [ZipMember("m/data.pkl", pickle), ZipMember("m/version", Data("3\n".utf8)), ZipMember("m/byteorder", Data("little".utf8))]
        for k in s.keys.sorted() { members.append(ZipMember("m/data/\(k)", s[k]!)) }
        return zip(members)
    }

    /// `{name: tensor(...)}` as one OrderedDict pickle; `body` writes the values after each key.
    public static func stateDict(_ entries: [(String, (inout Pickle) -> Void)], protocol v: UInt8 = 2,
                                 after: (inout Pickle) -> Void = { _ in }) -> Data {
        var p = Pickle(protocol: v)
        p.orderedDict()
        p.op(0x28)
        for (name, body) in entries { p.str(name); body(&p) }
        p.op(0x75)
        after(&p)
        p.op(0x2E)
        return p.data
    }

    static func weight(_ p: inout Pickle) { p.tensor(key: "0", numel: 6, shape: [2, 3], stride: [3, 1]) }
    static func bias(_ p: inout Pickle) { p.tensor(key: "1", numel: 2, shape: [2], stride: [1]) }

    public static func pickleFixtures() -> [Fixture] {
        var out: [Fixture] = []
        func refused(_ name: String, _ reason: String, _ pickle: Data) {
            out.append(Fixture(name: name, bytes: torchZip(pickle), outcome: .refused, reason: reason))
        }
        for (op, operand, label) in [(UInt8(0x82), [UInt8(1)], "EXT1"), (0x83, [1, 0], "EXT2"), (0x84, [1, 0, 0, 0], "EXT4")] {
            refused("pickle-\(label.lowercased()).pth", label, stateDict([("fc.weight", { p in p.b += [op] + operand }), ("fc.bias", bias)]))
        }
        // FRAME (protocol 4) longer than what follows, and one that ends inside an opcode.
        var past = Pickle(protocol: 4)
        past.op(0x95); past.b += withUnsafeBytes(of: UInt64(1 << 40).littleEndian, Array.init); past.op(0x4E, 0x2E)
        refused("pickle-frame-past-end.pth", "FRAME", past.data)
        let body = stateDict([("fc.weight", weight), ("fc.bias", bias)], protocol: 4)
        var lying = Data([0x80, 0x04, 0x95]); lying.le64(3); lying.append(body.dropFirst(2))
        refused("pickle-frame-mismatch.pth", "FRAME", lying)
        // BUILD on a tensor with torch's legacy set_ state (storage, offset, size, stride).
        refused("pickle-build-on-tensor.pth", "BUILD", stateDict([("fc.weight", { p in
            weight(&p)
            p.op(0x28); p.int(0); p.int(0); p.ints([2, 3]); p.ints([3, 1]); p.op(0x74)
            p.op(0x62)
        }), ("fc.bias", bias)]))
        // BUILD on the OrderedDict with a state that is not an attribute dict.
        refused("pickle-build-on-ordereddict.pth", "BUILD", stateDict([("fc.weight", weight), ("fc.bias", bias)], after: { p in
            p.int(7); p.op(0x62)
        }))
        // Protocol-5 out-of-band buffers.
        refused("pickle-next-buffer.pth", "0x97", stateDict([("fc.weight", { p in p.op(0x97) }), ("fc.bias", bias)], protocol: 5))
        refused("pickle-readonly-buffer.pth", "0x98", stateDict([("fc.weight", { p in p.op(0x5D, 0x98) }), ("fc.bias", bias)], protocol: 5))
        // Self-cycles: a list appended to itself, a dict holding itself.
        refused("pickle-list-cycle.pth", "itself", stateDict([("fc.weight", { p in p.op(0x5D, 0x32, 0x61) }), ("fc.bias", bias)]))
        refused("pickle-dict-cycle.pth", "itself", stateDict([("fc.weight", { p in p.op(0x7D, 0x71, 0); p.str("me"); p.op(0x68, 0, 0x73) }), ("fc.bias", bias)]))
        // 10^6 MARKs.
        var marks = Pickle()
        marks.b += [UInt8](repeating: 0x28, count: 1_000_000)
        marks.op(0x4E, 0x2E)
        refused("pickle-million-marks.pth", "pickle", marks.data)
        // `_rebuild_tensor_v3` reading a FloatStorage as int32 / float16.
        refused("pickle-v3-reinterpret.pth", "_rebuild_tensor_v3", stateDict([("fc.weight", { p in
            p.tensor(key: "0", numel: 6, shape: [2, 3], stride: [3, 1], v3: "int32")
        }), ("fc.bias", bias)]))
        // One storage key declared with two types.
        refused("pickle-storage-two-types.pth", "declared twice", stateDict([("fc.weight", weight), ("fc.bias", { p in
            p.tensor(key: "0", storage: "IntStorage", numel: 6, shape: [2], stride: [1])
        })]))
        // Valid: a stride-0 broadcast view, an overlapping view and two views of one storage.
        let valid = stateDict([
            ("broadcast", { p in p.tensor(key: "1", numel: 2, shape: [4, 2], stride: [0, 1]) }),
            ("overlap", { p in p.tensor(key: "0", numel: 6, shape: [3, 3], stride: [1, 1]) }),
            ("fc.weight", weight),
            ("tail", { p in p.tensor(key: "0", numel: 6, offset: 4, shape: [2], stride: [1]) }),
        ])
        out.append(Fixture(name: "pickle-shared-and-strided-views.pth", bytes: torchZip(valid), outcome: .readable, reason: ""))
        // Stride 0 expanding one float to 2^26 elements per tensor, many times. Tensors are read
        // only when used: `convert` refuses it as no head without expanding anything, and
        // reading them all stops at the byte budget (HostileRound3Tests).
        let expand = stateDict((0..<8).map { i in ("e\(i)", { (p: inout Pickle) in p.tensor(key: "1", numel: 2, shape: [1 << 13, 1 << 13], stride: [0, 0]) }) })
        refused("pickle-stride0-expansion.pth", "not a head clipsafety recognises", expand)
        return out
    }

    // MARK: - Zip

    public static func zipFixtures() -> [Fixture] {
        var out: [Fixture] = []
        let pickle = stateDict([("fc.weight", weight), ("fc.bias", bias)])
        func members() -> [ZipMember] {
            [ZipMember("m/data.pkl", pickle), ZipMember("m/version", Data("3\n".utf8)),
             ZipMember("m/data/0", floats([1, 2, 3, 4, 5, 6])), ZipMember("m/data/1", floats([0.5, -0.5]))]
        }
        func refused(_ name: String, _ reason: String, _ m: [ZipMember]) {
            out.append(Fixture(name: name, bytes: zip(m), outcome: .refused, reason: reason))
        }
        var z64 = members()
        z64[2].zip64Sizes = true
        z64[2].extra = zip64Extra(uncompressed: 1 << 33, compressed: 24)
        refused("zip64-lying-sizes.pth", "storage '0'", z64)
        var z64small = members()
        z64small[2].zip64Sizes = true
        z64small[2].extra = zip64Extra(uncompressed: 8, compressed: 24)
        refused("zip64-understated.pth", "zip", z64small)
        var renamed = members()
        renamed[0].localName = "m/data.pk_"
        refused("zip-local-central-names.pth", "zip", renamed)
        var encrypted = members()
        encrypted[0].flags = 1
        refused("zip-encrypted-member.pth", "data.pkl", encrypted)
        var link = members()
        link[0] = ZipMember("m/data.pkl", Data("/etc/passwd".utf8))
        link[0].unixMode = 0o120777
        refused("zip-symlink-member.pth", "symbolic link", link)
        refused("zip-absolute-name.pth", "absolute", members() + [ZipMember("/etc/cron.d/x", Data("x".utf8))])
        refused("zip-backslash-dotdot.pth", "'..'", members() + [ZipMember("..\\x", Data("x".utf8))])
        refused("zip-duplicate-member.pth", "same name", members() + [ZipMember("m/data.pkl", Data([0x80, 0x02, 0x4E, 0x2E]))])
        // Valid, if odd: a checkpoint among 100 000 empty members reads in linear time.
        let empties = (0..<100_000).map { ZipMember("e/\($0)", Data()) }
        out.append(Fixture(name: "zip-100000-empty-members.pth", bytes: zip(members() + empties), outcome: .readable, reason: ""))
        return out
    }

    // MARK: - .npy

    public static func npy(header: String, data: Data = Data(count: 8), major: UInt8 = 1) -> Data {
        var h = header
        let prefix = major == 1 ? 10 : 12
        h += String(repeating: " ", count: (64 - (prefix + h.utf8.count + 1) % 64) % 64) + "\n"
        var out = Data([0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, major, 0])
        if major == 1 { out.le16(UInt16(h.utf8.count)) } else { out.le32(UInt32(h.utf8.count)) }
        out.append(Data(h.utf8))
        out.append(data)
        return out
    }

    public static func npyFixtures() -> [Fixture] {
        var out: [Fixture] = []
        func refused(_ name: String, _ reason: String, _ bytes: Data) {
            out.append(Fixture(name: name, bytes: bytes, outcome: .refused, reason: reason))
        }
        refused("npy-list-header.npy", "header", npy(header: "['descr', '<f4']"))
        refused("npy-call-header.npy", "header", npy(header: "dict(descr='<f4', fortran_order=False, shape=(2,))"))
        refused("npy-expression-shape.npy", "header", npy(header: "{'descr': '<f4', 'fortran_order': False, 'shape': (1+1,), }"))
        refused("npy-import-descr.npy", "npy", npy(header: "{'descr': __import__('os').system('true'), 'fortran_order': False, 'shape': (2,), }"))
        refused("npy-duplicate-descr.npy", "twice", npy(header: "{'descr': '<f8', 'descr': '<f4', 'fortran_order': False, 'shape': (2,), }"))
        let huge = "{'descr': '<f4', 'fortran_order': True, 'shape': (576460752303423488, 576460752303423488, 0), }"
        refused("npy-huge-fortran-zero.npy", "shape", npy(header: huge, data: Data()))
        return out
    }

    /// A float16 embedding matrix of `rows` × `width` whose row 1 holds NaN payloads (quiet,
    /// signalling, negative) and whose other rows are ±0.5 (unit rows at width 4).
    public static func float16NaNEmbeddings(rows: Int = 3, width: Int) -> Data {
        var d = Data()
        for r in 0..<rows {
            for c in 0..<width {
                if r == 1 {
                    d.le16([0x7E01, 0x7C01, 0xFE55, 0x7FFF][c % 4])
                } else {
                    d.le16(Float16(c % 2 == 0 ? 0.5 : -0.5).bitPattern)  // unit rows at width 4
                }
            }
        }
        return npy(header: "{'descr': '<f2', 'fortran_order': False, 'shape': (\(rows), \(width)), }", data: d)
    }

    // MARK: - Native graphs

    /// Native files with a legal JSON graph that breaks a graph rule or a size limit.
    public static func nativeFixtures(base: NativeModel) throws -> [Fixture] {
        var out: [Fixture] = []
        func refused(_ name: String, _ reason: String, _ model: NativeModel) throws {
            out.append(Fixture(name: name, bytes: try model.serialized(), outcome: .refused, reason: reason))
        }
        var m = base
        m.graph = base.graph + [.argmax, .sigmoid]
        try refused("native-op-after-argmax.safetensors", "argmax", m)
        m = base
        m.graph = [.dense(weight: "linear_1.weight", bias: "linear_1.bias"), .categoricalLookup([])] + base.graph.dropFirst(2)
        try refused("native-lookup-after-dense.safetensors", "categorical_lookup", m)
        m = base
        m.tensors.removeAll { $0.name == "linear_2.weight" }
        try refused("native-missing-tensor.safetensors", "linear_2.weight", m)
        m = base
        m.tensors = m.tensors.map { $0.name == "linear_1.weight" ? Tensor(name: $0.name, shape: [3, 4], int64s: Array(repeating: 1, count: 12)) : $0 }
        try refused("native-integer-weights.safetensors", "not floating point", m)
        m = base
        m.graph = []
        try refused("native-empty-graph.safetensors", "no ops", m)
        // A 4 → 1 → 2^22 → 1 chain: 4M-wide activations, 4096 rows of which would take 128 GiB.
        m = base
        let wide = 1 << 22
        m.tensors = base.tensors + [Tensor(name: "narrow", shape: [1, 4], floats: [1, 1, 1, 1]),
                                    Tensor(name: "wide", shape: [wide, 1], floats: [Float](repeating: 0.5, count: wide))]
        m.graph = [.dense(weight: "narrow", bias: nil), .dense(weight: "wide", bias: nil), .promptScores(prompts: "narrowWide"), .sigmoid]
        m.tensors.append(Tensor(name: "narrowWide", shape: [1, wide], floats: [Float](repeating: 0.5, count: wide)))
        try refused("native-gigabyte-workspace.safetensors", "columns", m)
        return out
    }

    /// A native model whose first op looks up `keys` (at most 255³) distinct 3-byte keys in column 0.
    public static func hugeVocabulary(base: NativeModel, keys: Int) throws -> Data {
        var keyBytes = [UInt8]()
        keyBytes.reserveCapacity(keys * 4)
        for i in 0..<keys {  // three base-255 digits, none of them 0: unique up to 255³ keys
            keyBytes.append(UInt8(1 + (i / 65025) % 255))
            keyBytes.append(UInt8(1 + (i / 255) % 255))
            keyBytes.append(UInt8(1 + i % 255))
            keyBytes.append(0)
        }
        var m = base
        m.tensors += [Tensor(name: "vocab.keys", shape: [keyBytes.count], bytes: keyBytes),
                      Tensor(name: "vocab.values", shape: [keys], int64s: (0..<keys).map(Int64.init))]
        m.graph = [.categoricalLookup([CategoricalColumn(column: 0, keys: "vocab.keys", values: "vocab.values", oovIndex: 0)])] + base.graph
        return try m.serialized()
    }
}

extension Data {
    fileprivate mutating func le16(_ v: UInt16) { Swift.withUnsafeBytes(of: v.littleEndian) { append(contentsOf: $0) } }
    fileprivate mutating func le32(_ v: UInt32) { Swift.withUnsafeBytes(of: v.littleEndian) { append(contentsOf: $0) } }
    fileprivate mutating func le64(_ v: UInt64) { Swift.withUnsafeBytes(of: v.littleEndian) { append(contentsOf: $0) } }

}
