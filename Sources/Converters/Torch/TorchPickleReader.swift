import Foundation
import Runtime

/// Pickle opcodes this reader knows: the binary opcodes of protocols 2–5 that `torch.save` of a
/// state dict emits, plus those it must recognise only to refuse them by name.
///
/// A byte that is not a case here is refused as malformed; nothing guesses.
enum PickleOpcode: UInt8 {
    // Framing and control.
    case proto = 0x80, frame = 0x95, stop = 0x2E, mark = 0x28, pop = 0x30, popMark = 0x31, dup = 0x32
    // Constants and numbers. Pickle integers are little-endian, BINFLOAT is big-endian.
    case none = 0x4E, newTrue = 0x88, newFalse = 0x89
    case binInt = 0x4A, binInt1 = 0x4B, binInt2 = 0x4D, long1 = 0x8A, long4 = 0x8B, binFloat = 0x47
    // Strings and bytes.
    case binUnicode = 0x58, shortBinUnicode = 0x8C, binUnicode8 = 0x8D
    case shortBinString = 0x55, binString = 0x54
    case shortBinBytes = 0x43, binBytes = 0x42, binBytes8 = 0x8E
    // Containers.
    case emptyTuple = 0x29, tuple = 0x74, tuple1 = 0x85, tuple2 = 0x86, tuple3 = 0x87
    case emptyList = 0x5D, append = 0x61, appends = 0x65, list = 0x6C
    case emptyDict = 0x7D, setItem = 0x73, setItems = 0x75, dict = 0x64
    // Memo.
    case binPut = 0x71, longBinPut = 0x72, memoize = 0x94, binGet = 0x68, longBinGet = 0x6A
    // Names and calls: only ever applied to allowlisted globals, as inert data.
    case global = 0x63, stackGlobal = 0x93, reduce = 0x52, build = 0x62, newObj = 0x81, binPersId = 0x51
    // Opcodes that import or call through other routes; always refused.
    case inst = 0x69, obj = 0x6F, ext1 = 0x82, ext2 = 0x83, ext4 = 0x84, newObjEx = 0x92, persId = 0x50

    var name: String { String(describing: self) }
}

/// Element types of torch storages and tensors, named as `torch` names them.
public enum TorchDType: String, Sendable, CaseIterable {
    case float32, float16, float64, bfloat16, int64, int32, int16, int8, uint8, bool

    /// The safetensors dtype holding the same bytes.
    public var dtype: DType {
        switch self {
        case .float32: return .f32
        case .float16: return .f16
        case .float64: return .f64
        case .bfloat16: return .bf16
        case .int64: return .i64
        case .int32: return .i32
        case .int16: return .i16
        case .int8: return .i8
        case .uint8: return .u8
        case .bool: return .bool
        }
    }

    public var byteSize: Int { dtype.byteSize }

    /// `torch.<X>Storage` class names and the element type each holds.
    static let typedStorages: [String: TorchDType] = [
        "FloatStorage": .float32, "HalfStorage": .float16, "DoubleStorage": .float64,
        "BFloat16Storage": .bfloat16, "LongStorage": .int64, "IntStorage": .int32,
        "ShortStorage": .int16, "CharStorage": .int8, "ByteStorage": .uint8, "BoolStorage": .bool,
    ]

    /// `torch.<dtype>` attribute names (with their aliases) and the element type.
    static let dtypeNames: [String: TorchDType] = [
        "float32": .float32, "float": .float32, "float16": .float16, "half": .float16,
        "float64": .float64, "double": .float64, "bfloat16": .bfloat16,
        "int64": .int64, "long": .int64, "int32": .int32, "int": .int32,
        "int16": .int16, "short": .int16, "int8": .int8, "uint8": .uint8, "bool": .bool,
    ]
}

/// The only globals a torch state-dict pickle may name. Each is data here: nothing is imported,
/// looked up or called; the reader interprets the few that build a state dict itself.
enum TorchGlobal: Equatable {
    case orderedDict
    case rebuildTensorV2
    case rebuildTensorV3
    case rebuildParameter
    /// `torch.Size`: a tuple of ints (checkpoints store shapes with it).
    case size
    /// A typed storage class (`torch.FloatStorage`, …).
    case typedStorage(TorchDType)
    /// `torch.UntypedStorage`: bytes whose element type a `torch.<dtype>` gives.
    case untypedStorage
    /// A dtype object (`torch.float32`, …), as `_rebuild_tensor_v3` receives it.
    case dtype(TorchDType)

    /// The Python name, for messages.
    var pythonName: String {
        switch self {
        case .orderedDict: return "collections.OrderedDict"
        case .rebuildTensorV2: return "torch._utils._rebuild_tensor_v2"
        case .rebuildTensorV3: return "torch._utils._rebuild_tensor_v3"
        case .rebuildParameter: return "torch._utils._rebuild_parameter"
        case .size: return "torch.Size"
        case .typedStorage(let t): return "torch." + (TorchDType.typedStorages.first { $0.value == t }?.key ?? "Storage")
        case .untypedStorage: return "torch.UntypedStorage"
        case .dtype(let t): return "torch." + t.rawValue
        }
    }

    /// The allowlisted global `module.name`, or nil when it is not allowed.
    static func allowed(module: String, name: String) -> TorchGlobal? {
        switch (module, name) {
        case ("collections", "OrderedDict"): return .orderedDict
        case ("torch._utils", "_rebuild_tensor_v2"): return .rebuildTensorV2
        case ("torch._utils", "_rebuild_tensor_v3"): return .rebuildTensorV3
        case ("torch._utils", "_rebuild_parameter"): return .rebuildParameter
        case ("torch", "UntypedStorage"), ("torch.storage", "UntypedStorage"): return .untypedStorage
        case ("torch", "Size"): return .size
        case ("torch", _):
            if let t = TorchDType.typedStorages[name] { return .typedStorage(t) }
            if let t = TorchDType.dtypeNames[name] { return .dtype(t) }
            return nil
        default:
            return nil
        }
    }
}

/// A storage a persistent id names: `('storage', <type>, '<key>', '<location>', <numel>[, view])`.
/// Its bytes live outside the pickle (a zip record, or after the legacy pickles).
public struct TorchStorageRef: Equatable, Sendable {
    public var key: String
    /// Element type of the storage (`uint8` for an untyped storage, whose numel counts bytes).
    public var dtype: TorchDType
    public var isUntyped: Bool
    public var location: String
    /// Declared element count.
    public var numel: Int
}

/// A tensor as `_rebuild_tensor_v2/_v3` describe it: a strided view into a storage.
public struct TorchTensorRef: Equatable, Sendable {
    public var storage: TorchStorageRef
    /// The tensor's element type: the storage's, or `_rebuild_tensor_v3`'s dtype argument.
    public var dtype: TorchDType
    /// Offset, shape and strides in elements of `dtype`.
    public var offset: Int
    public var shape: [Int]
    public var strides: [Int]
}

/// A list or dict of a pickle. Reference types, because the memo shares them; `frozen` once
/// placed inside another value, after which a pickle may not change it (no cycles, and the
/// nesting depth recorded at that moment stays true).
final class PickleList {
    var items: [PickleValue] = []
    var frozen = false
    var depth = 1
}

final class PickleDict {
    var keys: [PickleKey] = []
    var values: [PickleKey: PickleValue] = [:]
    var frozen = false
    var depth = 1
}

/// Dict keys a state dict uses: strings, and for completeness integers.
enum PickleKey: Hashable, CustomStringConvertible {
    case string(String)
    case int(Int64)

    var description: String {
        switch self {
        case .string(let s): return "'\(s)'"
        case .int(let i): return String(i)
        }
    }
}

/// An inert value built by the restricted unpickler.
indirect enum PickleValue {
    case none
    case bool(Bool)
    case int(Int64)
    /// A LONG wider than 64 bits, as its little-endian two's-complement bytes.
    case bigInt([UInt8])
    case float(Double)
    case string(String)
    case bytes(Data)
    case tuple([PickleValue], depth: Int)
    case list(PickleList)
    case dict(PickleDict)
    case global(TorchGlobal)
    case storage(TorchStorageRef)
    case tensor(TorchTensorRef)

    var typeName: String {
        switch self {
        case .none: return "None"
        case .bool: return "bool"
        case .int, .bigInt: return "int"
        case .float: return "float"
        case .string: return "str"
        case .bytes: return "bytes"
        case .tuple: return "tuple"
        case .list: return "list"
        case .dict: return "dict"
        case .global: return "global"
        case .storage: return "storage"
        case .tensor: return "tensor"
        }
    }

    var depth: Int {
        switch self {
        case .tuple(_, let d): return d
        case .list(let l): return l.depth
        case .dict(let d): return d.depth
        default: return 0
        }
    }
}

/// A restricted unpickler for torch checkpoints: a stack machine over the opcodes of
/// `PickleOpcode` that builds inert `PickleValue`s.
///
/// Why not a general unpickler: unpickling calls whatever the file names. Here `GLOBAL` and
/// `STACK_GLOBAL` accept only `TorchGlobal.allowed` (and refuse anything else with its module
/// and name, before anything else happens); `REDUCE`, `NEWOBJ` and `BUILD` are interpreted only
/// for those globals, as the data they describe. Every length is checked against the bytes
/// left, nesting is capped by `ReaderLimits.maxDepth`, and a broken stack is an error.
struct TorchPickleReader {
    private var cursor: ByteCursor
    private let limits: ReaderLimits
    private var stack: [PickleValue] = []
    private var marks: [Int] = []
    private var memo: [UInt32: PickleValue] = [:]
    /// Where the current opcode started, relative to the pickle's start, for messages.
    private var opStart = 0
    private let base: Int
    /// Opcodes executed so far (capped by `ReaderLimits.maxPickleOperations`).
    private var operations = 0
    /// Where the current FRAME ends (cursor offset), while inside one. An opcode may not
    /// straddle that end, and a new FRAME may start only there (as CPython's unframer demands).
    private var frameEnd: Int?

    /// Reads one pickle from `cursor`, leaving it just after the STOP opcode.
    static func read(_ cursor: inout ByteCursor, limits: ReaderLimits) throws -> PickleValue {
        var reader = TorchPickleReader(cursor: cursor, limits: limits, base: cursor.offset)
        let value = try reader.run()
        cursor = reader.cursor
        return value
    }

    /// Reads a pickle that must fill `bytes` exactly (a zip record such as `data.pkl`).
    static func read(bytes: Data, limits: ReaderLimits) throws -> PickleValue {
        var cursor = ByteCursor(bytes)
        let value = try read(&cursor, limits: limits)
        guard cursor.isAtEnd else {
            throw ClipSafetyError.malformed("pickle: \(cursor.remaining) bytes after STOP")
        }
        return value
    }

    private init(cursor: ByteCursor, limits: ReaderLimits, base: Int) {
        self.cursor = cursor
        self.limits = limits
        self.base = base
    }

    // MARK: - The machine

    private mutating func run() throws -> PickleValue {
        opStart = cursor.offset - base
        guard let first = cursor.readInteger(UInt8.self, endianness: .little) else {
            throw ClipSafetyError.truncated("pickle: no bytes where a pickle should start")
        }
        guard first == PickleOpcode.proto.rawValue else {
            throw ClipSafetyError.unsupported("pickle: protocol 0 or 1 (no PROTO opcode; supported: protocols 2–5)")
        }
        let version = try u8("PROTO")
        guard (2...5).contains(version) else {
            throw ClipSafetyError.unsupported("pickle: protocol \(version) (supported: 2–5)")
        }
        while true {
            opStart = cursor.offset - base
            guard let byte = cursor.readInteger(UInt8.self, endianness: .little) else {
                throw ClipSafetyError.truncated("pickle: ends at offset \(opStart) without a STOP opcode")
            }
            guard let op = PickleOpcode(rawValue: byte) else {
                let hex = (byte < 16 ? "0" : "") + String(byte, radix: 16)
                throw ClipSafetyError.malformed("pickle: opcode 0x\(hex) at offset \(opStart) is unknown or not one a torch state dict uses")
            }
            operations += 1
            guard operations <= limits.maxPickleOperations else {
                throw ClipSafetyError.limitExceeded("pickle: more than \(limits.maxPickleOperations) opcodes by offset \(opStart); a state dict needs far fewer")
            }
            if op == .stop {
                if let end = frameEnd, cursor.offset != end {
                    throw ClipSafetyError.malformed("pickle: STOP at offset \(opStart) inside a FRAME that runs \(end - cursor.offset) bytes further")
                }
                guard marks.isEmpty, stack.count == 1, let result = stack.popLast() else {
                    throw ClipSafetyError.malformed("pickle: STOP at offset \(opStart) with \(stack.count) values and \(marks.count) open marks on the stack (expected exactly one value)")
                }
                return result
            }
            try execute(op)
            try checkFrameEnd()
        }
    }

    /// A FRAME's bytes hold whole opcodes: one that started inside the frame may not end past
    /// it. At the frame's end the pickle leaves it.
    private mutating func checkFrameEnd() throws {
        guard let end = frameEnd, cursor.offset >= end else { return }
        guard cursor.offset == end else {
            throw ClipSafetyError.malformed("pickle: opcode at offset \(opStart) runs past the end of its FRAME")
        }
        frameEnd = nil
    }

    /// Runs one opcode; each family has its own function, and exactly one handles `op`.
    private mutating func execute(_ op: PickleOpcode) throws {
        if try executeControl(op) || executeScalar(op) || executeText(op) || executeContainer(op) || executeMemo(op) { return }
        try executeObject(op)
    }

    /// Stack control: protocol, frames, marks. Returns false when `op` is not one of them.
    private mutating func executeControl(_ op: PickleOpcode) throws -> Bool {
        switch op {
        case .proto:
            throw ClipSafetyError.malformed("pickle: a second PROTO opcode at offset \(opStart)")
        case .frame:
            let n = try u64("FRAME")
            guard n <= UInt64(cursor.remaining) else {
                throw ClipSafetyError.truncated("pickle: FRAME of \(n) bytes at offset \(opStart) runs past the end")
            }
            guard frameEnd == nil else {
                throw ClipSafetyError.malformed("pickle: FRAME at offset \(opStart) starts inside another FRAME")
            }
            frameEnd = cursor.offset + Int(n)
        case .stop:
            break  // handled by run()
        case .mark:
            marks.append(stack.count)
        case .pop:
            if let top = marks.last, top == stack.count {
                marks.removeLast()  // CPython: POP right after MARK discards the mark
            } else {
                _ = try pop()
            }
        case .popMark:
            _ = try popToMark()
        case .dup:
            push(try peek())
        default: return false
        }
        return true
    }

    /// None, booleans, integers and floats. Returns false when `op` is not one of them.
    private mutating func executeScalar(_ op: PickleOpcode) throws -> Bool {
        switch op {
        case .none: push(.none)
        case .newTrue: push(.bool(true))
        case .newFalse: push(.bool(false))
        case .binInt: push(.int(Int64(try readInt(Int32.self, "BININT"))))
        case .binInt1: push(.int(Int64(try u8("BININT1"))))
        case .binInt2: push(.int(Int64(try readInt(UInt16.self, "BININT2"))))
        case .long1: push(try long(count: Int(try u8("LONG1"))))
        case .long4:
            let n = try readInt(Int32.self, "LONG4")
            guard n >= 0 else { throw ClipSafetyError.malformed("pickle: LONG4 with negative length at offset \(opStart)") }
            push(try long(count: Int(n)))
        case .binFloat:
            push(.float(Double(bitPattern: try readInt(UInt64.self, "BINFLOAT", endianness: .big))))
        default: return false
        }
        return true
    }

    /// Strings and byte strings. Returns false when `op` is not one of them.
    private mutating func executeText(_ op: PickleOpcode) throws -> Bool {
        switch op {
        case .binUnicode: push(.string(try text(count: Int(try readInt(UInt32.self, "BINUNICODE")))))
        case .shortBinUnicode: push(.string(try text(count: Int(try u8("SHORT_BINUNICODE")))))
        case .binUnicode8: push(.string(try text(count: try length64("BINUNICODE8"))))
        case .shortBinString: push(.string(try latin1(count: Int(try u8("SHORT_BINSTRING")))))
        case .binString:
            let n = try readInt(Int32.self, "BINSTRING")
            guard n >= 0 else { throw ClipSafetyError.malformed("pickle: BINSTRING with negative length at offset \(opStart)") }
            push(.string(try latin1(count: Int(n))))
        case .shortBinBytes: push(.bytes(try bytes(count: Int(try u8("SHORT_BINBYTES")))))
        case .binBytes: push(.bytes(try bytes(count: Int(try readInt(UInt32.self, "BINBYTES")))))
        case .binBytes8: push(.bytes(try bytes(count: try length64("BINBYTES8"))))
        default: return false
        }
        return true
    }

    /// Tuples, lists and dicts. Returns false when `op` is not one of them.
    private mutating func executeContainer(_ op: PickleOpcode) throws -> Bool {
        switch op {
        case .emptyTuple: push(try makeTuple([]))
        case .tuple: push(try makeTuple(try popToMark()))
        case .tuple1: push(try makeTuple(try pop(1)))
        case .tuple2: push(try makeTuple(try pop(2)))
        case .tuple3: push(try makeTuple(try pop(3)))
        case .emptyList: push(.list(PickleList()))
        case .list:
            let list = PickleList()
            try append(try popToMark(), to: list)
            push(.list(list))
        case .append:
            let value = try pop()
            try append([value], to: try listOnTop())
        case .appends:
            let values = try popToMark()
            try append(values, to: try listOnTop())
        case .emptyDict: push(.dict(PickleDict()))
        case .dict:
            let dict = PickleDict()
            try setItems(try popToMark(), in: dict)
            push(.dict(dict))
        case .setItem:
            let pair = try pop(2)
            try setItems(pair, in: try dictOnTop())
        case .setItems:
            let pairs = try popToMark()
            try setItems(pairs, in: try dictOnTop())
        default: return false
        }
        return true
    }

    /// The memo: PUT and GET. Returns false when `op` is not one of them.
    private mutating func executeMemo(_ op: PickleOpcode) throws -> Bool {
        switch op {
        case .binPut: memo[UInt32(try u8("BINPUT"))] = try peek()
        case .longBinPut: memo[try readInt(UInt32.self, "LONG_BINPUT")] = try peek()
        case .memoize: memo[UInt32(truncatingIfNeeded: memo.count)] = try peek()
        case .binGet: push(try memoGet(UInt32(try u8("BINGET"))))
        case .longBinGet: push(try memoGet(try readInt(UInt32.self, "LONG_BINGET")))
        default: return false
        }
        return true
    }

    /// Globals (allowlisted), REDUCE, NEWOBJ, BUILD and persistent ids; the routes a state dict never uses are refused.
    private mutating func executeObject(_ op: PickleOpcode) throws {
        switch op {
        case .global:
            let module = try line("GLOBAL")
            let name = try line("GLOBAL")
            push(.global(try allow(module: module, name: name)))
        case .stackGlobal:
            let pair = try pop(2)
            guard case .string(let module) = pair[0], case .string(let name) = pair[1] else {
                throw ClipSafetyError.malformed("pickle: STACK_GLOBAL at offset \(opStart) takes two strings, found \(pair[0].typeName) and \(pair[1].typeName)")
            }
            push(.global(try allow(module: module, name: name)))
        case .reduce:
            let args = try pop()
            let callable = try pop()
            push(try reduce(callable, args))
        case .newObj:
            let args = try pop()
            let cls = try pop()
            guard case .global(.orderedDict) = cls, case .tuple(let items, _) = args, items.isEmpty else {
                throw ClipSafetyError.malformed("pickle: NEWOBJ at offset \(opStart) builds something other than an empty OrderedDict")
            }
            push(.dict(PickleDict()))
        case .build:
            let state = try pop()
            let target = try peek()
            try build(target, state)
        case .binPersId:
            push(.storage(try persistentStorage(try pop())))

        case .inst, .obj, .ext1, .ext2, .ext4, .newObjEx:
            throw ClipSafetyError.unsafe("pickle: opcode \(op.name.uppercased()) at offset \(opStart) imports or calls by a route a state dict never uses; refused (nothing was imported or called)")
        case .persId:
            throw ClipSafetyError.unsupported("pickle: text persistent id (PERSID) at offset \(opStart); torch uses BINPERSID")
        default:
            throw ClipSafetyError.malformed("pickle: opcode \(op.name.uppercased()) at offset \(opStart) was not handled")
        }
    }

    // MARK: - Stack

    private mutating func push(_ v: PickleValue) { stack.append(v) }

    private func peek() throws -> PickleValue {
        guard stack.count > (marks.last ?? 0), let v = stack.last else {
            throw ClipSafetyError.malformed("pickle: empty stack at offset \(opStart)")
        }
        return v
    }

    private mutating func pop() throws -> PickleValue {
        guard stack.count > (marks.last ?? 0), let v = stack.popLast() else {
            throw ClipSafetyError.malformed("pickle: pop from an empty stack (or across a MARK) at offset \(opStart)")
        }
        return v
    }

    private mutating func pop(_ n: Int) throws -> [PickleValue] {
        guard stack.count - (marks.last ?? 0) >= n else {
            throw ClipSafetyError.malformed("pickle: opcode at offset \(opStart) needs \(n) values, the stack has fewer")
        }
        let values = Array(stack.suffix(n))
        stack.removeLast(n)
        return values
    }

    private mutating func popToMark() throws -> [PickleValue] {
        guard let m = marks.popLast() else {
            throw ClipSafetyError.malformed("pickle: opcode at offset \(opStart) needs a MARK, none is open")
        }
        let values = Array(stack[m...])
        stack.removeSubrange(m...)
        return values
    }

    private func memoGet(_ i: UInt32) throws -> PickleValue {
        guard let v = memo[i] else {
            throw ClipSafetyError.malformed("pickle: memo entry \(i) read at offset \(opStart) was never stored")
        }
        return v
    }

    // MARK: - Containers

    /// Marks `v` as placed inside another value and returns its depth.
    private func freeze(_ v: PickleValue) -> Int {
        switch v {
        case .list(let l): l.frozen = true
        case .dict(let d): d.frozen = true
        default: break
        }
        return v.depth
    }

    private func checkDepth(_ d: Int) throws {
        guard d <= limits.maxDepth else {
            throw ClipSafetyError.limitExceeded("pickle: values nest deeper than \(limits.maxDepth) levels at offset \(opStart)")
        }
    }

    private func makeTuple(_ items: [PickleValue]) throws -> PickleValue {
        let d = 1 + (items.map { freeze($0) }.max() ?? 0)
        try checkDepth(d)
        return .tuple(items, depth: d)
    }

    private func listOnTop() throws -> PickleList {
        guard case .list(let l) = try peek() else {
            throw ClipSafetyError.malformed("pickle: APPEND(S) at offset \(opStart) onto a \(try peek().typeName), not a list")
        }
        return l
    }

    private func dictOnTop() throws -> PickleDict {
        guard case .dict(let d) = try peek() else {
            throw ClipSafetyError.malformed("pickle: SETITEM(S) at offset \(opStart) onto a \(try peek().typeName), not a dict")
        }
        return d
    }

    private func append(_ values: [PickleValue], to list: PickleList) throws {
        guard !list.frozen else {
            throw ClipSafetyError.malformed("pickle: offset \(opStart) changes a list already placed inside another value")
        }
        if values.contains(where: { if case .list(let l) = $0 { return l === list } else { return false } }) {
            throw ClipSafetyError.malformed("pickle: offset \(opStart) appends a list to itself (a cycle)")
        }
        for v in values {
            let d = freeze(v) + 1
            try checkDepth(d)
            list.depth = Swift.max(list.depth, d)
            list.items.append(v)
        }
    }

    private func setItems(_ flat: [PickleValue], in dict: PickleDict) throws {
        guard flat.count % 2 == 0 else {
            throw ClipSafetyError.malformed("pickle: SETITEMS at offset \(opStart) with an odd number (\(flat.count)) of keys and values")
        }
        guard !dict.frozen else {
            throw ClipSafetyError.malformed("pickle: offset \(opStart) changes a dict already placed inside another value")
        }
        if flat.contains(where: { if case .dict(let d) = $0 { return d === dict } else { return false } }) {
            throw ClipSafetyError.malformed("pickle: offset \(opStart) puts a dict inside itself (a cycle)")
        }
        var i = 0
        while i < flat.count {
            let key: PickleKey
            switch flat[i] {
            case .string(let s): key = .string(s)
            case .int(let n): key = .int(n)
            default:
                throw ClipSafetyError.unsupported("pickle: dict key of type \(flat[i].typeName) at offset \(opStart) (a state dict has string keys)")
            }
            let value = flat[i + 1]
            let d = freeze(value) + 1
            try checkDepth(d)
            dict.depth = Swift.max(dict.depth, d)
            if dict.values.updateValue(value, forKey: key) == nil { dict.keys.append(key) }
            i += 2
        }
    }

    // MARK: - Globals and their meaning

    private func allow(module: String, name: String) throws -> TorchGlobal {
        guard let g = TorchGlobal.allowed(module: module, name: name) else {
            throw ClipSafetyError.unsafe("pickle: global \(module).\(name) at offset \(opStart) is not on the allowlist of a torch state dict; refused (nothing was imported or called)")
        }
        return g
    }

    /// What calling an allowlisted global would build, built here as data.
    private func reduce(_ callable: PickleValue, _ argsValue: PickleValue) throws -> PickleValue {
        guard case .global(let g) = callable else {
            throw ClipSafetyError.malformed("pickle: REDUCE at offset \(opStart) calls a \(callable.typeName), not a global")
        }
        guard case .tuple(let args, _) = argsValue else {
            throw ClipSafetyError.malformed("pickle: REDUCE at offset \(opStart) with \(argsValue.typeName) arguments, not a tuple")
        }
        switch g {
        case .orderedDict:
            guard args.isEmpty else {
                throw ClipSafetyError.unsupported("pickle: OrderedDict built from \(args.count) arguments at offset \(opStart); torch builds it empty")
            }
            return .dict(PickleDict())
        case .rebuildTensorV2, .rebuildTensorV3:
            return .tensor(try rebuildTensor(args, v3: g == .rebuildTensorV3))
        case .rebuildParameter:
            guard args.count == 3 || args.count == 4, case .tensor(let t) = args[0] else {
                throw ClipSafetyError.malformed("pickle: _rebuild_parameter at offset \(opStart) expects (tensor, requires_grad, hooks)")
            }
            return .tensor(t)
        case .size:
            guard args.count == 1, case .tuple(let dims, let depth) = args[0], dims.allSatisfy({ if case .int = $0 { return true } else { return false } }) else {
                throw ClipSafetyError.malformed("pickle: torch.Size at offset \(opStart) expects one tuple of ints")
            }
            return .tuple(dims, depth: depth)
        case .typedStorage, .untypedStorage, .dtype:
            throw ClipSafetyError.malformed("pickle: REDUCE at offset \(opStart) calls \(g.pythonName) directly, which a state dict never does")
        }
    }

    /// `_rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata])` or
    /// `_rebuild_tensor_v3(storage, offset, size, stride, requires_grad, hooks, dtype[, metadata])`.
    private func rebuildTensor(_ args: [PickleValue], v3: Bool) throws -> TorchTensorRef {
        let what = v3 ? "_rebuild_tensor_v3" : "_rebuild_tensor_v2"
        let arity = v3 ? 7...8 : 6...7
        guard arity.contains(args.count) else {
            throw ClipSafetyError.malformed("pickle: \(what) at offset \(opStart) with \(args.count) arguments (expected \(arity.lowerBound)–\(arity.upperBound))")
        }
        guard case .storage(let storage) = args[0] else {
            throw ClipSafetyError.malformed("pickle: \(what) at offset \(opStart): argument 0 is a \(args[0].typeName), not a storage")
        }
        guard case .int(let offset) = args[1], offset >= 0, offset <= Int64(Int.max) else {
            throw ClipSafetyError.malformed("pickle: \(what) at offset \(opStart): storage offset is not a non-negative int")
        }
        let shape = try intTuple(args[2], what: "\(what) size")
        let strides = try intTuple(args[3], what: "\(what) stride")
        guard shape.count == strides.count else {
            throw ClipSafetyError.malformed("pickle: \(what) at offset \(opStart): size has \(shape.count) dimensions, stride \(strides.count)")
        }
        var dtype = storage.dtype
        if v3 {
            guard case .global(.dtype(let t)) = args[6] else {
                throw ClipSafetyError.malformed("pickle: _rebuild_tensor_v3 at offset \(opStart): argument 6 is not a torch dtype")
            }
            guard storage.isUntyped || t == storage.dtype else {
                throw ClipSafetyError.malformed("pickle: _rebuild_tensor_v3 at offset \(opStart) reads storage '\(storage.key)' of \(storage.dtype.rawValue) as \(t.rawValue); torch writes a dtype only over untyped storages")
            }
            dtype = t
        } else if storage.isUntyped {
            throw ClipSafetyError.malformed("pickle: _rebuild_tensor_v2 at offset \(opStart) over an untyped storage gives no element type")
        }
        return TorchTensorRef(storage: storage, dtype: dtype, offset: Int(offset), shape: shape, strides: strides)
    }

    private func intTuple(_ v: PickleValue, what: String) throws -> [Int] {
        guard case .tuple(let items, _) = v else {
            throw ClipSafetyError.malformed("pickle: \(what) at offset \(opStart) is a \(v.typeName), not a tuple")
        }
        guard items.count <= 64 else {
            throw ClipSafetyError.limitExceeded("pickle: \(what) at offset \(opStart) has \(items.count) dimensions (at most 64)")
        }
        return try items.map { item in
            guard case .int(let n) = item, n >= 0, n <= Int64(Int.max) else {
                throw ClipSafetyError.malformed("pickle: \(what) at offset \(opStart) holds something other than non-negative ints")
            }
            return Int(n)
        }
    }

    /// `BUILD` sets state on an object: torch gives the state dict its `_metadata` this way,
    /// and a parameter its attributes. The state is not needed; anything else is refused.
    ///
    /// Python would call `__setstate__` with the state, or update the object's `__dict__` from
    /// it. On a dict (the state dict's `_metadata`) only a dict of attributes, or `(dict, slots)`
    /// states, is accepted; on a tensor only an empty state: `Tensor.__setstate__` with a tuple
    /// would replace the tensor's storage, offset, size and stride, so torch would load other
    /// values than the ones read here.
    private func build(_ target: PickleValue, _ state: PickleValue) throws {
        switch (target, state) {
        case (.dict(let d), _) where d === Self.dictOf(state):
            throw ClipSafetyError.malformed("pickle: BUILD at offset \(opStart) gives a dict itself as its state (a cycle)")
        case (.dict, .dict), (.dict, .none):
            _ = freeze(state)
        case (.dict, .tuple(let items, _)) where items.count == 2 && items.allSatisfy(Self.isDictOrNone):
            _ = freeze(state)
        case (.tensor, .none):
            break
        case (.tensor, .tuple(let items, _)) where items.isEmpty:
            break
        case (.tensor, .dict(let d)) where d.keys.isEmpty:
            _ = freeze(state)
        case (.dict, _), (.tensor, _):
            throw ClipSafetyError.malformed("pickle: BUILD at offset \(opStart) sets a state of type \(state.typeName) on a \(target.typeName); torch state dicts set only attribute dicts (a tensor's would replace its data)")
        default:
            throw ClipSafetyError.malformed("pickle: BUILD at offset \(opStart) on a \(target.typeName)")
        }
    }

    private static func dictOf(_ v: PickleValue) -> PickleDict? {
        if case .dict(let d) = v { return d }
        return nil
    }

    private static func isDictOrNone(_ v: PickleValue) -> Bool {
        switch v {
        case .dict, .none: return true
        default: return false
        }
    }

    /// 2⁴⁸ elements (of at most 16 bytes): far beyond any file, small enough that byte counts
    /// cannot overflow.
    static let maxStorageElements: Int64 = 1 << 48

    /// A persistent id: `('storage', <storage type>, key, location, numel[, view_metadata])`.
    private func persistentStorage(_ pid: PickleValue) throws -> TorchStorageRef {
        guard case .tuple(let t, _) = pid, t.count == 5 || t.count == 6 else {
            throw ClipSafetyError.malformed("pickle: persistent id at offset \(opStart) is not a 5- or 6-tuple")
        }
        guard case .string("storage") = t[0] else {
            throw ClipSafetyError.unsupported("pickle: persistent id at offset \(opStart) is not a storage")
        }
        let dtype: TorchDType
        let untyped: Bool
        switch t[1] {
        case .global(.typedStorage(let d)): dtype = d; untyped = false
        case .global(.untypedStorage): dtype = .uint8; untyped = true
        default:
            throw ClipSafetyError.malformed("pickle: persistent id at offset \(opStart) names no storage type")
        }
        guard case .string(let key) = t[2], case .string(let location) = t[3] else {
            throw ClipSafetyError.malformed("pickle: persistent id at offset \(opStart): key and location must be strings")
        }
        guard case .int(let numel) = t[4], numel >= 0 else {
            throw ClipSafetyError.malformed("pickle: persistent id at offset \(opStart): numel is not a non-negative int")
        }
        // Only a bound that keeps byte counts from overflowing: a storage is described whatever
        // its size (the readers check its record against the file), and the element limit
        // applies when a tensor is read.
        guard numel <= Self.maxStorageElements else {
            throw ClipSafetyError.limitExceeded("pickle: storage '\(key)' declares \(numel) elements, more than any file can hold")
        }
        if t.count == 6, case .none = t[5] {} else if t.count == 6 {
            throw ClipSafetyError.unsupported("pickle: storage '\(key)' is a view of another storage (torch < 0.4 files)")
        }
        return TorchStorageRef(key: key, dtype: dtype, isUntyped: untyped, location: location, numel: Int(numel))
    }

    // MARK: - Operand reads (all bounds-checked through ByteCursor)

    private func short(_ what: String) -> ClipSafetyError {
        .truncated("pickle: ends inside the operand of \(what) at offset \(opStart)")
    }

    private mutating func u8(_ what: String) throws -> UInt8 {
        guard let v = cursor.readInteger(UInt8.self, endianness: .little) else { throw short(what) }
        return v
    }

    private mutating func readInt<T: FixedWidthInteger>(_: T.Type, _ what: String, endianness: Endianness = .little) throws -> T {
        guard let v = cursor.readInteger(T.self, endianness: endianness) else { throw short(what) }
        return v
    }

    private mutating func u64(_ what: String) throws -> UInt64 { try readInt(UInt64.self, what) }

    private mutating func length64(_ what: String) throws -> Int {
        let n = try u64(what)
        guard n <= UInt64(cursor.remaining) else {
            throw ClipSafetyError.truncated("pickle: \(what) at offset \(opStart) declares \(n) bytes, \(cursor.remaining) remain")
        }
        return Int(n)
    }

    private mutating func bytes(count: Int) throws -> Data {
        guard let d = cursor.readBytes(count) else {
            throw ClipSafetyError.truncated("pickle: opcode at offset \(opStart) declares \(count) bytes, \(cursor.remaining) remain")
        }
        return d
    }

    private mutating func text(count: Int) throws -> String {
        let d = try bytes(count: count)
        guard let s = String(data: d, encoding: .utf8) else {
            throw ClipSafetyError.malformed("pickle: string at offset \(opStart) is not UTF-8")
        }
        return s
    }

    private mutating func latin1(count: Int) throws -> String {
        String(decoding: try bytes(count: count).map { UInt16($0) }, as: UTF16.self)
    }

    /// A newline-terminated operand of GLOBAL (at most 256 bytes: a dotted Python name).
    private mutating func line(_ what: String) throws -> String {
        var out: [UInt8] = []
        while true {
            let b = try u8(what)
            if b == 0x0A { break }
            out.append(b)
            guard out.count <= 256 else {
                throw ClipSafetyError.malformed("pickle: \(what) name at offset \(opStart) is longer than 256 bytes")
            }
        }
        guard let s = String(bytes: out, encoding: .utf8) else {
            throw ClipSafetyError.malformed("pickle: \(what) name at offset \(opStart) is not UTF-8")
        }
        return s
    }

    /// LONG1/LONG4: little-endian two's complement of `count` bytes.
    private mutating func long(count: Int) throws -> PickleValue {
        let d = try bytes(count: count)
        let b = [UInt8](d)
        if b.isEmpty { return .int(0) }
        guard b.count <= 8 else { return .bigInt(b) }
        var v: UInt64 = 0
        for (i, byte) in b.enumerated() { v |= UInt64(byte) << (8 * UInt64(i)) }
        if b.count < 8, let last = b.last, last & 0x80 != 0 {
            v |= ~UInt64(0) << (8 * UInt64(b.count))  // sign-extend
        }
        return .int(Int64(bitPattern: v))
    }
}

/// Plain pickled values as short text for people (`7`, `0.001`, `'adam'`, `[0, 1, 2]`).
enum PickleValueText {
    /// Items of a list shown before `…`.
    static let maxItems = 8

    static func describe(_ value: PickleValue) -> String {
        switch value {
        case .none: return "None"
        case .bool(let b): return b ? "True" : "False"
        case .int(let i): return String(i)
        case .bigInt(let bytes): return "int of \(bytes.count) bytes"
        case .float(let d): return "\(d)"
        case .string(let s): return "'" + (s.count > 200 ? String(s.prefix(200)) + "…" : s) + "'"
        case .bytes(let d): return "bytes (\(d.count))"
        case .tuple(let items, _): return "(" + list(items) + (items.count == 1 ? ",)" : ")")
        case .list(let l): return "[" + list(l.items) + "]"
        case .dict(let d): return d.keys.isEmpty ? "{}" : "dict (\(d.keys.count) keys)"
        case .global(let g): return g.pythonName
        case .storage(let s): return "storage '\(s.key)'"
        case .tensor: return "tensor"
        }
    }

    static func list(_ items: [PickleValue]) -> String {
        let shown = items.prefix(maxItems).map(describe).joined(separator: ", ")
        return items.count > maxItems ? shown + ", … \(items.count) items" : shown
    }
}
