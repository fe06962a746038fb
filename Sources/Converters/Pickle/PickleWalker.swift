import Foundation
import Runtime

/// One thing a pickle would make its unpickler do beyond building plain data.
public struct PickleEvent: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable {
        /// GLOBAL, STACK_GLOBAL, INST: a module is imported and a name looked up in it.
        case importGlobal = "import"
        /// REDUCE, NEWOBJ, NEWOBJ_EX, OBJ, INST: something is called.
        case call
        /// BUILD: an object's `__setstate__` (or `__dict__`) receives state.
        case build
        /// EXT1/2/4: an object is taken from the process's copyreg extension registry.
        case extensionCode = "extension"
        /// PERSID, BINPERSID: the loader's `persistent_load` is asked for an object.
        case persistentId = "persistent-id"
        /// NEXT_BUFFER: the caller must hand the unpickler out-of-band buffers.
        case outOfBandBuffer = "out-of-band-buffer"
    }

    public var kind: Kind
    /// The opcode, as pickletools names it.
    public var opcode: String
    /// What is imported, called, built or asked for (`os.system`, `instance of collections.OrderedDict`).
    public var target: String
    /// Byte offset of the opcode from the start of the scanned bytes.
    public var offset: Int
    /// True when `PickleAllowlist` allows it.
    public var allowed: Bool
}

/// The result of walking a pickle stream: every event, and whether the walk reached the end.
public struct PickleScan: Sendable {
    public var events: [PickleEvent] = []
    /// Pickles read completely, to their STOP opcode.
    public var pickles = 0
    /// Protocol of each pickle (0 or 1 when it has no PROTO opcode: the two cannot be told apart).
    public var protocols: [Int] = []
    /// Offset just after the last STOP read.
    public var end = 0
    /// Why the walk stopped before the end of the bytes; nil when every byte was read.
    public var failure: ClipSafetyError?

    public var isComplete: Bool { failure == nil }
    /// True when any event is outside the allowlist.
    public var hasUnsafeEvent: Bool { events.contains { !$0.allowed } }
}

/// A symbolic, non-executing reader of pickle protocols 0–5.
///
/// It reads every opcode as CPython's unpickler would, keeping a stack and a memo of
/// `PickleSymbol`s: just enough to know the module and name strings STACK_GLOBAL takes
/// (including strings fetched from the memo) and what each REDUCE, NEWOBJ, OBJ, INST and BUILD
/// applies to. Nothing is imported, called or even built. Work is bounded by `ReaderLimits`
/// (opcodes, tuple nesting); every operand read is bounds-checked. Unlike
/// `TorchPickleReader`, it does not stop at the first global outside the allowlist: it lists
/// them all, for `scan`.
public struct PickleWalker {
    private var cursor: ByteCursor
    private let limits: ReaderLimits
    private var stack: [PickleSymbol] = []
    private var marks: [Int] = []
    private var memo: [Int64: PickleSymbol] = [:]
    private var opStart = 0
    private var op: PickleOp = .stop
    private var operations = 0
    private var result = PickleScan()

    /// Walks `bytes` as a sequence of pickles (one file may hold several, as torch's legacy
    /// format does), stopping after `maxPickles` when given. A stream that ends inside a pickle,
    /// or holds bytes after the last STOP that are not a pickle, has a `failure`.
    public static func scan(_ bytes: Data, limits: ReaderLimits = .init(), maxPickles: Int? = nil) -> PickleScan {
        var walker = PickleWalker(cursor: ByteCursor(bytes), limits: limits)
        do {
            repeat {
                try walker.walkOne()
                walker.result.pickles += 1
                walker.result.end = walker.cursor.offset
                if let maxPickles, walker.result.pickles >= maxPickles { break }
            } while !walker.cursor.isAtEnd
        } catch let e as ClipSafetyError {
            walker.result.failure = e
        } catch {
            walker.result.failure = .malformed("pickle: \(error)")
        }
        return walker.result
    }

    private init(cursor: ByteCursor, limits: ReaderLimits) {
        self.cursor = cursor
        self.limits = limits
    }

    // MARK: - The machine

    /// Reads one pickle to its STOP opcode, with a fresh stack and memo (a new unpickler).
    private mutating func walkOne() throws {
        stack.removeAll()
        marks.removeAll()
        memo.removeAll()
        var proto = 0
        var first = true
        while true {
            opStart = cursor.offset
            guard let byte = cursor.readInteger(UInt8.self, endianness: .little) else {
                throw ClipSafetyError.truncated(first ? "pickle: nothing where a pickle should start at offset \(opStart)" : "pickle: ends at offset \(opStart) without a STOP opcode")
            }
            guard let next = PickleOp(rawValue: byte) else {
                throw ClipSafetyError.malformed("pickle: byte 0x\(String(format: "%02x", byte)) at offset \(opStart) is not a pickle opcode")
            }
            op = next
            operations += 1
            guard operations <= limits.maxPickleOperations else {
                throw ClipSafetyError.limitExceeded("pickle: more than \(limits.maxPickleOperations) opcodes by offset \(opStart)")
            }
            if op == .proto {
                proto = Int(try u8())
                guard proto <= 5 else { throw ClipSafetyError.unsupported("pickle: protocol \(proto) at offset \(opStart) (Python reads 0–5)") }
            } else if op == .stop {
                _ = try pop()
                result.protocols.append(proto)
                return
            } else {
                try execute()
            }
            first = false
        }
    }

    private mutating func execute() throws {
        if try executeControl() || executeScalar() || executeText() || executeContainer() || executeMemo() { return }
        try executeObject()
    }

    private mutating func executeControl() throws -> Bool {
        switch op {
        case .frame:
            let n = try u64()
            guard n <= UInt64(cursor.remaining) else {
                throw ClipSafetyError.truncated("pickle: FRAME of \(n) bytes at offset \(opStart) runs past the end")
            }
        case .mark: marks.append(stack.count)
        case .pop:
            if let top = marks.last, top == stack.count { marks.removeLast() } else { _ = try pop() }
        case .popMark: _ = try popToMark()
        case .dup: stack.append(try peek())
        default: return false
        }
        return true
    }

    private mutating func executeScalar() throws -> Bool {
        switch op {
        case .none: push(.value("None"))
        case .newTrue, .newFalse: push(.value("bool"))
        case .int:
            let line = try line()
            push(.value(line == "00" || line == "01" ? "bool" : "int"))
        case .binInt: _ = try bytes(4); push(.value("int"))
        case .binInt1: _ = try bytes(1); push(.value("int"))
        case .binInt2: _ = try bytes(2); push(.value("int"))
        case .long: _ = try line(); push(.value("int"))
        case .long1: _ = try bytes(Int(try u8())); push(.value("int"))
        case .long4: _ = try bytes(try signedLength()); push(.value("int"))
        case .float: _ = try line(); push(.value("float"))
        case .binFloat: _ = try bytes(8); push(.value("float"))
        default: return false
        }
        return true
    }

    private mutating func executeText() throws -> Bool {
        switch op {
        case .string: push(try PickleText.quoted(try line()))
        case .binString: push(PickleText.bytes(try bytes(try signedLength())))
        case .shortBinString: push(PickleText.bytes(try bytes(Int(try u8()))))
        case .unicode: push(PickleText.rawUnicodeEscape(try lineBytes()))
        case .binUnicode: push(PickleText.utf8(try bytes(Int(try u32()))))
        case .shortBinUnicode: push(PickleText.utf8(try bytes(Int(try u8()))))
        case .binUnicode8: push(PickleText.utf8(try bytes(try length64())))
        case .binBytes: _ = try bytes(Int(try u32())); push(.value("bytes"))
        case .shortBinBytes: _ = try bytes(Int(try u8())); push(.value("bytes"))
        case .binBytes8: _ = try bytes(try length64()); push(.value("bytes"))
        case .byteArray8: _ = try bytes(try length64()); push(.value("bytearray"))
        case .nextBuffer:
            record(.outOfBandBuffer, "out-of-band buffer supplied by the caller", allowed: false)
            push(.value("buffer"))
        case .readonlyBuffer: _ = try peek()
        default: return false
        }
        return true
    }

    private mutating func executeContainer() throws -> Bool {
        switch op {
        case .emptyTuple: push(try tuple([]))
        case .tuple: push(try tuple(try popToMark()))
        case .tuple1: push(try tuple(try pop(1)))
        case .tuple2: push(try tuple(try pop(2)))
        case .tuple3: push(try tuple(try pop(3)))
        case .emptyList: push(.value("list"))
        case .list: _ = try popToMark(); push(.value("list"))
        case .append: _ = try pop(); _ = try peek()
        case .appends: _ = try popToMark(); _ = try peek()
        case .emptyDict: push(.value("dict"))
        case .dict:
            guard try popToMark().count % 2 == 0 else { throw odd() }
            push(.value("dict"))
        case .setItem: _ = try pop(2); _ = try peek()
        case .setItems:
            guard try popToMark().count % 2 == 0 else { throw odd() }
            _ = try peek()
        case .emptySet: push(.value("set"))
        case .addItems: _ = try popToMark(); _ = try peek()
        case .frozenSet: _ = try popToMark(); push(.value("frozenset"))
        default: return false
        }
        return true
    }

    private mutating func executeMemo() throws -> Bool {
        switch op {
        case .get: push(try memoGet(try decimal()))
        case .binGet: push(try memoGet(Int64(try u8())))
        case .longBinGet: push(try memoGet(Int64(try u32())))
        case .put: memo[try decimal()] = try peek()
        case .binPut: memo[Int64(try u8())] = try peek()
        case .longBinPut: memo[Int64(try u32())] = try peek()
        case .memoize:
            let value = try peek()
            memo[Int64(memo.count)] = value
        default: return false
        }
        return true
    }

    /// Imports, calls, state, extensions and persistent ids: the opcodes `scan` reports.
    private mutating func executeObject() throws {
        switch op {
        case .global:
            let module = try nameLine(), name = try nameLine()
            push(importGlobal(module: module, name: name))
        case .stackGlobal:
            let pair = try pop(2)
            guard case .text(let module) = pair[0], case .text(let name) = pair[1] else {
                let opaque = pair.allSatisfy { if case .opaqueText = $0 { return true }; if case .text = $0 { return true }; return false }
                guard opaque else { throw ClipSafetyError.malformed("pickle: STACK_GLOBAL at offset \(opStart) takes \(pair[0].described) and \(pair[1].described), not two str") }
                record(.importGlobal, "unresolved global (undecodable module or name)", allowed: false)
                push(.instance(of: "an unresolved global"))
                return
            }
            push(importGlobal(module: module, name: name))
        case .inst:
            let module = try nameLine(), name = try nameLine()
            let callable = importGlobal(module: module, name: name)
            _ = try popToMark()
            push(call(callable))
        case .obj:
            let items = try popToMark()
            guard let cls = items.first else { throw ClipSafetyError.malformed("pickle: OBJ at offset \(opStart) with nothing after its MARK") }
            push(call(cls))
        case .reduce:
            let pair = try pop(2)
            push(call(pair[0]))
        case .newObj:
            let pair = try pop(2)
            push(call(pair[0]))
        case .newObjEx:
            let triple = try pop(3)
            push(call(triple[0]))
        case .build:
            _ = try pop()
            build(try peek())
        case .ext1: push(extensionCode(Int(try u8())))
        case .ext2: push(extensionCode(Int(try readInt(UInt16.self))))
        case .ext4: push(extensionCode(Int(try readInt(Int32.self))))
        case .persId:
            let pid = try line()
            record(.persistentId, "text persistent id '\(pid.prefix(64))'", allowed: false)
            push(.instance(of: "a persistent object"))
        case .binPersId:
            let (allowed, described) = PickleAllowlist.allowsPersistentId(try pop())
            record(.persistentId, described, allowed: allowed)
            push(.instance(of: "a persistent object"))
        default:
            throw ClipSafetyError.malformed("pickle: opcode \(op.name) at offset \(opStart) was not handled")
        }
    }

    // MARK: - Events

    private mutating func record(_ kind: PickleEvent.Kind, _ target: String, allowed: Bool) {
        result.events.append(PickleEvent(kind: kind, opcode: op.name, target: target, offset: opStart, allowed: allowed))
    }

    private mutating func importGlobal(module: String, name: String) -> PickleSymbol {
        record(.importGlobal, "\(module).\(name)", allowed: PickleAllowlist.allowsImport(module: module, name: name))
        return .global(module: module, name: name)
    }

    /// Records a call of `callable` and returns what it would build.
    private mutating func call(_ callable: PickleSymbol) -> PickleSymbol {
        if case .global(let m, let n) = callable {
            record(.call, "\(m).\(n)", allowed: PickleAllowlist.allowsCall(module: m, name: n))
            return .instance(of: "\(m).\(n)")
        }
        record(.call, callable.described, allowed: false)
        return .instance(of: "what \(op.name) at offset \(opStart) returns")
    }

    /// BUILD gives state to an object: allowed on what an allowlisted call built.
    private mutating func build(_ target: PickleSymbol) {
        var allowed = false
        if case .instance(let of) = target, let dot = of.lastIndex(of: ".") {
            allowed = PickleAllowlist.allowsCall(module: String(of[..<dot]), name: String(of[of.index(after: dot)...]))
        }
        record(.build, target.described, allowed: allowed)
    }

    private mutating func extensionCode(_ code: Int) -> PickleSymbol {
        record(.extensionCode, "extension registry code \(code)", allowed: false)
        return .instance(of: "extension code \(code)")
    }

    // MARK: - Stack and memo (CPython's rules: nothing is popped across a MARK)

    private mutating func push(_ v: PickleSymbol) { stack.append(v) }

    private func peek() throws -> PickleSymbol {
        guard stack.count > (marks.last ?? 0), let v = stack.last else { throw underflow() }
        return v
    }

    private mutating func pop() throws -> PickleSymbol {
        guard stack.count > (marks.last ?? 0), let v = stack.popLast() else { throw underflow() }
        return v
    }

    private mutating func pop(_ n: Int) throws -> [PickleSymbol] {
        guard stack.count - (marks.last ?? 0) >= n else { throw underflow() }
        let values = Array(stack.suffix(n))
        stack.removeLast(n)
        return values
    }

    private mutating func popToMark() throws -> [PickleSymbol] {
        guard let m = marks.popLast() else {
            throw ClipSafetyError.malformed("pickle: \(op.name) at offset \(opStart) needs a MARK, none is open")
        }
        let values = Array(stack[m...])
        stack.removeSubrange(m...)
        return values
    }

    private func memoGet(_ key: Int64) throws -> PickleSymbol {
        guard let v = memo[key] else {
            throw ClipSafetyError.malformed("pickle: \(op.name) at offset \(opStart) reads memo entry \(key), which was never stored")
        }
        return v
    }

    private func tuple(_ items: [PickleSymbol]) throws -> PickleSymbol {
        let depth = 1 + (items.map(\.depth).max() ?? 0)
        guard depth <= limits.maxDepth else {
            throw ClipSafetyError.limitExceeded("pickle: tuples nest deeper than \(limits.maxDepth) levels at offset \(opStart)")
        }
        return .tuple(items, depth: depth)
    }

    private func underflow() -> ClipSafetyError {
        .malformed("pickle: \(op.name) at offset \(opStart) pops from an empty stack (or across a MARK)")
    }

    private func odd() -> ClipSafetyError {
        .malformed("pickle: \(op.name) at offset \(opStart) with an odd number of keys and values")
    }

    // MARK: - Operands

    private func short() -> ClipSafetyError {
        .truncated("pickle: ends inside the operand of \(op.name) at offset \(opStart)")
    }

    private mutating func u8() throws -> UInt8 { try readInt(UInt8.self) }
    private mutating func u32() throws -> UInt32 { try readInt(UInt32.self) }
    private mutating func u64() throws -> UInt64 { try readInt(UInt64.self) }

    private mutating func readInt<T: FixedWidthInteger>(_: T.Type) throws -> T {
        guard let v = cursor.readInteger(T.self, endianness: .little) else { throw short() }
        return v
    }

    private mutating func bytes(_ count: Int) throws -> Data {
        guard let d = cursor.readBytes(count) else {
            throw ClipSafetyError.truncated("pickle: \(op.name) at offset \(opStart) declares \(count) bytes, \(cursor.remaining) remain")
        }
        return d
    }

    private mutating func signedLength() throws -> Int {
        let n = try readInt(Int32.self)
        guard n >= 0 else { throw ClipSafetyError.malformed("pickle: \(op.name) at offset \(opStart) with a negative length") }
        return Int(n)
    }

    private mutating func length64() throws -> Int {
        let n = try u64()
        guard n <= UInt64(cursor.remaining) else {
            throw ClipSafetyError.truncated("pickle: \(op.name) at offset \(opStart) declares \(n) bytes, \(cursor.remaining) remain")
        }
        return Int(n)
    }

    /// A newline-terminated operand, without the newline.
    private mutating func lineBytes() throws -> Data {
        let all = cursor.bytes
        guard let newline = all[cursor.position..<cursor.end].firstIndex(of: 0x0A) else { throw short() }
        let line = try bytes(newline - cursor.position)
        _ = cursor.skip(1)
        return line
    }

    private mutating func line() throws -> String {
        String(decoding: try lineBytes(), as: UTF8.self)
    }

    /// A GLOBAL or INST operand: CPython decodes it as UTF-8 and refuses it otherwise.
    private mutating func nameLine() throws -> String {
        guard let s = String(data: try lineBytes(), encoding: .utf8) else {
            throw ClipSafetyError.malformed("pickle: \(op.name) at offset \(opStart) names a module or attribute that is not UTF-8")
        }
        return s
    }

    /// A PUT or GET operand: a decimal memo key.
    private mutating func decimal() throws -> Int64 {
        let text = try line().trimmingCharacters(in: .whitespaces)
        guard let key = Int64(text) else {
            throw ClipSafetyError.malformed("pickle: \(op.name) at offset \(opStart) has a memo key that is not a decimal number")
        }
        return key
    }
}
