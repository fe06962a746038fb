@testable import Converters
import Foundation
import Runtime
import TestSupport
import XCTest

/// `scan` measured against picklescan (PyPI, pinned in scripts/requirements-test.txt), the
/// denylist scanner hubs use, on the same files: every file picklescan flags, clipsafety flags
/// too, naming the same dangerous globals; the bypasses picklescan misses (memo entries it
/// reads wrongly, EXT opcodes, globals it does not know, protocol 0 pickles in zips under
/// other names) clipsafety flags as well; and benign files written by Python's own pickle and
/// NumPy are safe for both.
final class ScanPeerTests: XCTestCase {
    /// For each file: picklescan's dangerous globals (`module.name`) and whether it erred.
    static let picklescanScript = """
        import json, sys, os
        from picklescan.scanner import scan_file_path, SafetyLevel
        out = {}
        for name in sorted(os.listdir(sys.argv[1])):
            r = scan_file_path(os.path.join(sys.argv[1], name))
            out[name] = {"dangerous": sorted(g.module + "." + g.name for g in r.globals if g.safety == SafetyLevel.Dangerous),
                         "error": bool(r.scan_err)}
        print(json.dumps(out))
        """

    /// Benign pickles and arrays written by the real writers: a list of numbers in every
    /// protocol, a dict of floats, a float32 `.npy` and an `.npz` of two arrays.
    static let benignScript = """
        import pickle, sys, numpy as np
        d = sys.argv[1]
        for p in range(6):
            with open(f"{d}/numbers_p{p}.pkl", "wb") as f:
                pickle.dump([1, 2.5, -3, 10**30, "text", None, True, (1, 2), {"a": [1.0]}], f, protocol=p)
        with open(f"{d}/floats.pickle", "wb") as f:
            pickle.dump({"w": [0.1] * 100, "b": 0.5}, f, protocol=4)
        np.save(f"{d}/matrix.npy", np.arange(12, dtype=np.float32).reshape(3, 4))
        np.savez(f"{d}/arrays.npz", a=np.ones(3), b=np.zeros((2, 2), dtype=np.int64))
        """

    func picklescan(_ dir: String) throws -> [String: (dangerous: [String], error: Bool)] {
        let out = try PythonEnv.run(Self.picklescanScript, [dir])
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: [String: Any]])
        return json.mapValues { ($0["dangerous"] as? [String] ?? [], $0["error"] as? Bool ?? false) }
    }

    func testClipsafetyFlagsEverythingPicklescanFlagsAndItsBypasses() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let fixtures = try ScanFixtures.writeHostile(to: dir)
        let peer = try picklescan(dir.path)
        var missedByPeer: [String] = []
        for f in fixtures {
            let ours = ModelScanner.scan(file: dir.file(f.name))
            let theirs = try XCTUnwrap(peer[f.name], f.name)
            let ourTargets = Set(ours.findings.filter { !$0.allowed }.flatMap { [$0.target, $0.kind.rawValue] })
            XCTAssertEqual(ours.verdict, .unsafe, "\(f.name): clipsafety says \(ours.verdict)")
            for global in theirs.dangerous where !global.contains("unknown") {
                XCTAssertTrue(ourTargets.contains(global), "\(f.name): picklescan names \(global), clipsafety names \(ourTargets.sorted())")
            }
            for target in f.mustFlag {
                XCTAssertTrue(ourTargets.contains(target), "\(f.name): clipsafety does not name \(target)")
            }
            XCTAssertEqual(theirs.dangerous.isEmpty, f.picklescanMisses,
                           "\(f.name): picklescan reports \(theirs.dangerous); the fixture says it \(f.picklescanMisses ? "misses" : "catches") it")
            if theirs.dangerous.isEmpty { missedByPeer.append(f.name) }
        }
        print("scan peer comparison: \(fixtures.count) hostile files, clipsafety flags \(fixtures.count), picklescan 1.0.5 flags \(fixtures.count - missedByPeer.count); missed: \(missedByPeer.joined(separator: ", "))")
        XCTAssertFalse(missedByPeer.isEmpty)
    }

    func testBenignFilesFromRealWritersAreSafeForBoth() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        try PythonEnv.run(Self.benignScript, [dir.path])
        for name in ["clip_ViT-B-32_openai_binary_nsfw_head.pth", "h14_nsfw_legacy.pth"] {
            if let path = try? Fixtures.modelFile(name) {
                try FileManager.default.copyItem(atPath: path, toPath: dir.file(name))
            }
        }
        let peer = try picklescan(dir.path)
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
        XCTAssertGreaterThanOrEqual(names.count, 9)
        for name in names {
            let ours = ModelScanner.scan(file: dir.file(name))
            XCTAssertEqual(ours.verdict, .safe, "\(name): \(ours.findings.filter { !$0.allowed }) \(ours.problem ?? "")")
            XCTAssertEqual(peer[name]?.dangerous ?? [], [], name)
        }
    }
}
