@testable import Converters
import Foundation
import TestSupport

/// Hand-made hostile files for `scan`, one per way a pickle (or an archive around it) can make
/// its loader import or call something. Each names the dangerous targets a scanner must report,
/// and whether picklescan (a denylist scanner) is known to miss it.
struct HostileFixture {
    var name: String
    var bytes: Data
    /// Targets (`module.name`, or a finding kind such as `extension`) that must be reported unsafe.
    var mustFlag: [String]
    /// True when picklescan 1.0.5 reports no dangerous global for it.
    var picklescanMisses: Bool
}

/// Pickle opcodes assembled by hand (CPython's pickletools names).
enum P {
    static func proto(_ v: UInt8) -> [UInt8] { [0x80, v] }
    static func global(_ module: String, _ name: String) -> [UInt8] { [0x63] + Array("\(module)\n\(name)\n".utf8) }
    static func str(_ s: String) -> [UInt8] { [0x8C, UInt8(s.utf8.count)] + Array(s.utf8) }
    static func binUnicode(_ s: String) -> [UInt8] {
        let n = UInt32(s.utf8.count)
        return [0x58, UInt8(n & 0xff), UInt8(n >> 8 & 0xff), UInt8(n >> 16 & 0xff), UInt8(n >> 24)] + Array(s.utf8)
    }
    static let stackGlobal: [UInt8] = [0x93], tuple1: [UInt8] = [0x85], reduce: [UInt8] = [0x52], stop: [UInt8] = [0x2E]
    static let memoize: [UInt8] = [0x94], dup: [UInt8] = [0x32], pop: [UInt8] = [0x30], mark: [UInt8] = [0x28]
    static let emptyTuple: [UInt8] = [0x29], none: [UInt8] = [0x4E]
    static func binGet(_ i: UInt8) -> [UInt8] { [0x68, i] }
    static func frame(_ body: [UInt8]) -> [UInt8] {
        var n = UInt64(body.count)
        return [0x95] + withUnsafeBytes(of: &n) { Array($0) } + body
    }

    /// `os.system('echo pwned')` by GLOBAL and REDUCE, protocol 2.
    static let osSystem: [UInt8] = proto(2) + global("os", "system") + binUnicode("echo pwned") + tuple1 + reduce + stop
}

enum ScanFixtures {
    static func data(_ b: [UInt8]) -> Data { Data(b) }

    /// A zip of stored members, built by libzip.
    static func zip(_ members: [(String, [UInt8])]) throws -> Data {
        try ZipArchive.archive(members.map { (name: $0.0, data: Data($0.1)) })
    }

    /// A `.npy` of dtype `|O` whose data is `pickle`.
    static func objectNpy(_ pickle: [UInt8]) -> Data {
        var header = "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"
        while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
        header += "\n"
        let n = UInt16(header.utf8.count)
        return Data([0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(n & 0xff), UInt8(n >> 8)] + Array(header.utf8) + pickle)
    }

    static func hostile() throws -> [HostileFixture] {
        let memoDup = P.proto(4) + P.str("os") + P.dup + P.memoize + P.pop + P.pop + P.binGet(0) + P.str("system")
            + P.stackGlobal + P.str("echo pwned") + P.tuple1 + P.reduce + P.stop
        let memoPlain = P.proto(4) + P.str("subprocess") + P.memoize + P.str("check_output") + P.memoize + P.pop + P.pop
            + P.binGet(0) + P.binGet(1) + P.stackGlobal + P.str("id") + P.tuple1 + P.reduce + P.stop
        let protocol5 = P.proto(5) + P.frame([0x97, 0x98, 0x30] + P.str("builtins") + P.str("eval") + P.stackGlobal
            + P.str("1+1") + P.tuple1 + P.reduce + P.stop)
        let zipOfPickle = try zip([("payload.pkl", P.osSystem)])
        let zipOfText = try zip([("model/notes.txt", Array("cos\nsystem\n(S'echo pwned'\ntR.".utf8))])
        let torchZip = try zip([("archive/data.pkl", P.osSystem), ("archive/version", Array("3\n".utf8))])
        return [
            HostileFixture(name: "global_os_system.pkl", bytes: data(P.osSystem), mustFlag: ["os.system"], picklescanMisses: false),
            HostileFixture(name: "protocol0_os_system.pkl", bytes: Data("cos\nsystem\n(S'echo pwned'\ntR.".utf8), mustFlag: ["os.system"], picklescanMisses: false),
            HostileFixture(name: "stack_global_memo.pkl", bytes: data(memoPlain), mustFlag: ["subprocess.check_output"], picklescanMisses: false),
            HostileFixture(name: "stack_global_memo_dup.pkl", bytes: data(memoDup), mustFlag: ["os.system"], picklescanMisses: true),
            HostileFixture(name: "inst_os_system.pkl", bytes: Data("(S'echo pwned'\nios\nsystem\n.".utf8), mustFlag: ["os.system"], picklescanMisses: false),
            HostileFixture(name: "obj_os_system.pkl", bytes: Data("(cos\nsystem\nS'echo pwned'\no.".utf8), mustFlag: ["os.system"], picklescanMisses: false),
            HostileFixture(name: "ext1.pkl", bytes: data(P.proto(2) + [0x82, 0x01] + P.emptyTuple + P.reduce + P.stop), mustFlag: ["extension"], picklescanMisses: true),
            HostileFixture(name: "ext2.pkl", bytes: data(P.proto(2) + [0x83, 0x01, 0x02] + P.emptyTuple + P.reduce + P.stop), mustFlag: ["extension"], picklescanMisses: true),
            HostileFixture(name: "ext4.pkl", bytes: data(P.proto(2) + [0x84, 0x01, 0x02, 0x03, 0x04] + P.emptyTuple + P.reduce + P.stop), mustFlag: ["extension"], picklescanMisses: true),
            HostileFixture(name: "unknown_global.pkl", bytes: data(P.proto(2) + P.global("importlib", "import_module") + P.binUnicode("os") + P.tuple1 + P.reduce + P.stop),
                           mustFlag: ["importlib.import_module"], picklescanMisses: true),
            HostileFixture(name: "protocol5_buffers.pkl", bytes: data(protocol5), mustFlag: ["builtins.eval", "out-of-band-buffer"], picklescanMisses: false),
            HostileFixture(name: "second_pickle.pkl", bytes: data(P.proto(2) + P.none + P.stop + P.osSystem), mustFlag: ["os.system"], picklescanMisses: false),
            HostileFixture(name: "nested_pickle.zip", bytes: zipOfPickle, mustFlag: ["os.system"], picklescanMisses: false),
            HostileFixture(name: "nested_protocol0.zip", bytes: zipOfText, mustFlag: ["os.system"], picklescanMisses: true),
            HostileFixture(name: "torch_os_system.pth", bytes: torchZip, mustFlag: ["os.system"], picklescanMisses: false),
            HostileFixture(name: "object_array.npy", bytes: objectNpy(P.osSystem), mustFlag: ["os.system", "object-array"], picklescanMisses: false),
        ]
    }

    /// Writes every hostile fixture into `dir`; returns them.
    static func writeHostile(to dir: TemporaryDirectory) throws -> [HostileFixture] {
        let all = try hostile()
        for f in all { _ = try dir.write(f.bytes, to: f.name) }
        return all
    }
}
