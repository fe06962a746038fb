import Foundation
import Runtime

/// What the symbolic pickle walker knows about one value of the unpickler's stack: just enough
/// to name what a global, a call or a persistent id refers to. Nothing is ever built or called.
indirect enum PickleSymbol: Sendable {
    /// A `str` whose text is known.
    case text(String)
    /// A `str` whose text could not be decoded as Python would (a STRING with a bad escape,
    /// lone surrogates): a global named by it is reported as unresolved.
    case opaqueText
    /// The object a GLOBAL, STACK_GLOBAL or INST imports.
    case global(module: String, name: String)
    /// What calling something returns (REDUCE, NEWOBJ, OBJ, INST, EXT, persistent ids).
    case instance(of: String)
    /// A tuple, with its items (they name a persistent id's storage) and its nesting depth.
    case tuple([PickleSymbol], depth: Int)
    /// Anything else, by its Python type name: `int`, `bytes`, `list`, `dict`, …
    case value(String)

    var depth: Int {
        if case .tuple(_, let d) = self { return d }
        return 0
    }

    /// The value in words, for a finding's target.
    var described: String {
        switch self {
        case .text(let s): return "str '\(s.prefix(64))'"
        case .opaqueText: return "str (undecodable)"
        case .global(let m, let n): return "\(m).\(n)"
        case .instance(let of): return "instance of \(of)"
        case .tuple(let items, _): return "tuple of \(items.count)"
        case .value(let type): return type
        }
    }
}

/// Opcodes of pickle protocols 0–5 (CPython's `pickletools`), by byte.
enum PickleOp: UInt8, CaseIterable {
    case mark = 0x28, stop = 0x2E, pop = 0x30, popMark = 0x31, dup = 0x32
    case float = 0x46, int = 0x49, binInt = 0x4A, binInt1 = 0x4B, long = 0x4C, binInt2 = 0x4D, none = 0x4E
    case persId = 0x50, binPersId = 0x51, reduce = 0x52, string = 0x53, binString = 0x54, shortBinString = 0x55
    case unicode = 0x56, binUnicode = 0x58, append = 0x61, build = 0x62, global = 0x63, dict = 0x64
    case emptyDict = 0x7D, appends = 0x65, get = 0x67, binGet = 0x68, inst = 0x69, longBinGet = 0x6A
    case list = 0x6C, emptyList = 0x5D, obj = 0x6F, put = 0x70, binPut = 0x71, longBinPut = 0x72
    case setItem = 0x73, tuple = 0x74, emptyTuple = 0x29, setItems = 0x75, binFloat = 0x47
    // Protocol 2.
    case proto = 0x80, newObj = 0x81, ext1 = 0x82, ext2 = 0x83, ext4 = 0x84
    case tuple1 = 0x85, tuple2 = 0x86, tuple3 = 0x87, newTrue = 0x88, newFalse = 0x89, long1 = 0x8A, long4 = 0x8B
    // Protocol 3.
    case binBytes = 0x42, shortBinBytes = 0x43
    // Protocol 4.
    case shortBinUnicode = 0x8C, binUnicode8 = 0x8D, binBytes8 = 0x8E, emptySet = 0x8F, addItems = 0x90
    case frozenSet = 0x91, newObjEx = 0x92, stackGlobal = 0x93, memoize = 0x94, frame = 0x95
    // Protocol 5.
    case byteArray8 = 0x96, nextBuffer = 0x97, readonlyBuffer = 0x98

    /// pickletools' name (`STACK_GLOBAL`, `BINPERSID`, …).
    var name: String {
        switch self {
        case .popMark: return "POP_MARK"
        case .binInt1: return "BININT1"
        case .binInt2: return "BININT2"
        case .persId: return "PERSID"
        case .binPersId: return "BINPERSID"
        case .binString: return "BINSTRING"
        case .shortBinString: return "SHORT_BINSTRING"
        case .binUnicode: return "BINUNICODE"
        case .emptyDict: return "EMPTY_DICT"
        case .binGet: return "BINGET"
        case .longBinGet: return "LONG_BINGET"
        case .emptyList: return "EMPTY_LIST"
        case .binPut: return "BINPUT"
        case .longBinPut: return "LONG_BINPUT"
        case .setItem: return "SETITEM"
        case .emptyTuple: return "EMPTY_TUPLE"
        case .setItems: return "SETITEMS"
        case .binFloat: return "BINFLOAT"
        case .newObj: return "NEWOBJ"
        case .newTrue: return "NEWTRUE"
        case .newFalse: return "NEWFALSE"
        case .binBytes: return "BINBYTES"
        case .shortBinBytes: return "SHORT_BINBYTES"
        case .shortBinUnicode: return "SHORT_BINUNICODE"
        case .binUnicode8: return "BINUNICODE8"
        case .binBytes8: return "BINBYTES8"
        case .emptySet: return "EMPTY_SET"
        case .addItems: return "ADDITEMS"
        case .frozenSet: return "FROZENSET"
        case .newObjEx: return "NEWOBJ_EX"
        case .stackGlobal: return "STACK_GLOBAL"
        case .byteArray8: return "BYTEARRAY8"
        case .nextBuffer: return "NEXT_BUFFER"
        case .readonlyBuffer: return "READONLY_BUFFER"
        default: return String(describing: self).uppercased()
        }
    }
}
