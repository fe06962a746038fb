@testable import Converters
import Foundation
import Runtime
import TestSupport
import XCTest

/// `scan` in process: hostile pickles of every kind are unsafe and name what they ask for,
/// broken and oversized ones are unreadable, and real framework-written files are safe.
final class ScanTests: XCTestCase {
    func scan(_ bytes: Data, _ name: String = "x.pkl", limits: ReaderLimits = .init()) -> FileScan {
        ModelScanner.scan(bytes: bytes, path: name, limits: limits)
    }

    func unsafeTargets(_ s: FileScan) -> [String] {
        s.findings.filter { !$0.allowed }.flatMap { [$0.target, $0.kind.rawValue] }
    }

    func testEveryHostileFixtureIsUnsafeAndNamesItsTargets() throws {
        for f in try ScanFixtures.hostile() {
            let s = scan(f.bytes, f.name)
            XCTAssertEqual(s.verdict, .unsafe, "\(f.name): \(s.findings) \(s.problem ?? "")")
            let named = unsafeTargets(s)
            for target in f.mustFlag {
                XCTAssertTrue(named.contains(target), "\(f.name) does not name \(target): \(named)")
            }
        }
    }

    func testMemoSourcedStackGlobalIsResolvedWithItsOffset() throws {
        let f = try XCTUnwrap(ScanFixtures.hostile().first { $0.name == "stack_global_memo_dup.pkl" })
        let s = scan(f.bytes)
        let imp = try XCTUnwrap(s.findings.first { $0.kind == .importGlobal })
        XCTAssertEqual(imp.target, "os.system")
        // PROTO (2) + SHORT_BINUNICODE "os" (4) + DUP, MEMOIZE, POP, POP (4) + BINGET 0 (2) + "system" (8) = 20.
        XCTAssertEqual(imp.locations.first?.offset, 20)
        XCTAssertTrue(s.findings.contains { $0.kind == .call && $0.target == "os.system" && !$0.allowed })
        XCTAssertNil(s.problem)
    }

    func testOpcodeKindsAreReportedByTheirOpcode() {
        let inst = PickleWalker.scan(Data("(S'x'\nios\nsystem\n.".utf8))
        XCTAssertEqual(inst.events.map(\.opcode), ["INST", "INST"])
        XCTAssertEqual(inst.events.map(\.kind), [.importGlobal, .call])
        let obj = PickleWalker.scan(Data("(cos\nsystem\nS'x'\no.".utf8))
        XCTAssertEqual(obj.events.map(\.opcode), ["GLOBAL", "OBJ"])
        XCTAssertEqual(obj.protocols, [0])
        let ext = PickleWalker.scan(Data(P.proto(2) + [0x84, 0x01, 0x00, 0x00, 0x00] + P.emptyTuple + P.reduce + P.stop))
        XCTAssertEqual(ext.events.first?.target, "extension registry code 1")
        XCTAssertEqual(ext.events.first?.offset, 2)
        XCTAssertTrue(ext.isComplete)
    }

    func testTruncatedPickleIsUnreadable() {
        let s = scan(Data(P.proto(4) + P.str("os")))
        XCTAssertEqual(s.verdict, .unreadable)
        XCTAssertTrue(s.problem?.contains("without a STOP") == true, s.problem ?? "")
        // Cut inside an operand.
        XCTAssertEqual(scan(Data(P.proto(4) + [0x8C, 0x10, 0x61])).verdict, .unreadable)
    }

    func testTruncatedAfterAGlobalIsStillUnsafe() {
        let s = scan(Data(P.proto(2) + P.global("os", "system")))
        XCTAssertEqual(s.verdict, .unsafe)
        XCTAssertNotNil(s.problem)
    }

    func testOpcodeBombStopsAtTheLimit() {
        var limits = ReaderLimits()
        limits.maxPickleOperations = 1000
        let bomb = P.proto(4) + Array(repeating: P.none + P.pop, count: 2000).flatMap { $0 } + P.none + P.stop
        let s = scan(Data(bomb), limits: limits)
        XCTAssertEqual(s.verdict, .unreadable)
        XCTAssertTrue(s.problem?.contains("more than 1000 opcodes") == true, s.problem ?? "")
        XCTAssertEqual(scan(Data(bomb)).verdict, .safe)
    }

    func testNestedTuplesStopAtTheDepthLimit() {
        let deep = P.proto(2) + P.emptyTuple + Array(repeating: P.tuple1, count: 150).flatMap { $0 } + P.stop
        let s = scan(Data(deep))
        XCTAssertEqual(s.verdict, .unreadable)
        XCTAssertTrue(s.problem?.contains("nest deeper") == true, s.problem ?? "")
    }

    func testBytesAfterTheLastPickleMakeItUnreadable() {
        let s = scan(Data(P.proto(2) + P.none + P.stop + [0xFF, 0xFF]))
        XCTAssertEqual(s.verdict, .unreadable)
    }

    func testUnknownBytesAreUnreadableNotSafe() {
        let s = scan(Data("hello world".utf8), "notes.txt")
        XCTAssertEqual(s.verdict, .unreadable)
        XCTAssertEqual(s.format, "unknown")
        XCTAssertEqual(scan(Data(), "empty").verdict, .unreadable)
    }

    func testZipMemberNamesAndDataMembers() throws {
        let benign = P.proto(2) + P.none + P.stop
        let z = try ScanFixtures.zip([("../escape.pkl", benign), ("ok/readme.txt", Array("just text".utf8))])
        let s = scan(z, "a.zip")
        XCTAssertEqual(s.verdict, .unsafe)
        XCTAssertTrue(s.findings.contains { $0.kind == .memberName && $0.target == "../escape.pkl" })
        XCTAssertTrue(s.notes.contains { $0.contains("ok/readme.txt") }, "\(s.notes)")
    }

    func testCatalogFilesAreSafe() throws {
        let names = ["clip_autokeras_nsfw_b32.zip", "clip_autokeras_binary_nsfw.zip", "clip_ViT-B-32_openai_binary_nsfw_head.pth",
                     "clip_ViT-L-14_openai_binary_nsfw_head.pth", "violence_detection_vit_b_32.npy", "violence_detection_vit_l_14.npy",
                     "h14_nsfw.pth", "h14_nsfw_legacy.pth", "clip_autokeras_nsfw_b32_dense.h5", "clip_autokeras_nsfw_b32_dense.keras",
                     "clip_autokeras_binary_nsfw_dense.h5", "clip_autokeras_binary_nsfw_dense.keras"]
        var scanned = 0
        for name in names {
            guard let path = try? Fixtures.modelFile(name) else { continue }
            let s = ModelScanner.scan(file: path)
            XCTAssertEqual(s.verdict, .safe, "\(name): \(s.findings.filter { !$0.allowed }) \(s.problem ?? "")")
            scanned += 1
        }
        if scanned == 0 { throw XCTSkip("no catalog files fetched") }
    }

    func testTorchStateDictListsItsAllowedGlobals() throws {
        let s = ModelScanner.scan(file: try Fixtures.modelFile("clip_ViT-B-32_openai_binary_nsfw_head.pth"))
        XCTAssertEqual(s.format, "torch-zip")
        let imports = Set(s.findings.filter { $0.kind == .importGlobal }.map(\.target))
        XCTAssertEqual(imports, ["collections.OrderedDict", "torch._utils._rebuild_tensor_v2", "torch.FloatStorage"])
        XCTAssertTrue(s.findings.allSatisfy(\.allowed))
        XCTAssertTrue(s.findings.contains { $0.kind == .persistentId && $0.locations.first?.part?.hasSuffix("data.pkl") == true })
    }

    func testNativeConversionsAreSafe() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        var converted = 0
        for name in ["clip_autokeras_nsfw_b32.zip", "clip_ViT-B-32_openai_binary_nsfw_head.pth", "h14_nsfw_legacy.pth",
                     "clip_autokeras_nsfw_b32_dense.keras", "clip_autokeras_nsfw_b32_dense.h5", "violence_detection_vit_b_32.npy"] {
            guard let path = try? Fixtures.modelFile(name) else { continue }
            let out = dir.file(name + ".safetensors")
            try ModelLoader.load(path: path).write(to: out)
            let s = ModelScanner.scan(file: out)
            XCTAssertEqual(s.format, "clipsafety-native", name)
            XCTAssertEqual(s.verdict, .safe, "\(name): \(s.problem ?? "")")
            converted += 1
        }
        if converted == 0 { throw XCTSkip("no catalog files fetched") }
    }

    func testTorchLegacyWithAForeignGlobalIsUnsafe() throws {
        // The legacy prefix, then protocol, system info and a root pickle that imports os.system.
        let legacy = TorchReader.legacyPrefix + P.stop + P.proto(2) + [0x4D, 0xE9, 0x03] + P.stop
            + P.proto(2) + [0x7D] + P.stop + P.osSystem + P.proto(2) + [0x5D] + P.stop
        let s = scan(Data(legacy), "legacy.pth")
        XCTAssertEqual(s.format, "torch-legacy")
        XCTAssertEqual(s.verdict, .unsafe)
        XCTAssertTrue(unsafeTargets(s).contains("os.system"))
    }
}
