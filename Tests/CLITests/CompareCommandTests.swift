import Foundation
import XCTest
import Converters
import Runtime
import TestSupport

final class CompareCommandTests: XCTestCase {
    func json(_ run: CLIRun) throws -> [String: Any] {
        try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any], run.stdout + run.stderr)
    }

    /// The acceptance: the B/32 zip against upstream's PyTorch port on the reference
    /// inputs. The port skips the categorical encoding, so rows whose categorical columns hold
    /// vocabulary values differ (up to 0.042, docs: ../shared/docs/UPSTREAM.md); no decision flips.
    func testB32ZipAgainstThePortOnTheReferenceInputs() throws {
        let run = try CLI.run(["compare", try Fixtures.modelFile("clip_autokeras_nsfw_b32.zip"),
                               try Fixtures.modelFile("clip_ViT-B-32_openai_binary_nsfw_head.pth"),
                               "--inputs", Fixtures.reference("clip_autokeras_nsfw_b32.npz"), "--json"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let r = try json(run)
        XCTAssertEqual(try JSONSchema.documented("clipsafety-compare/1").violations(of: r), [])
        XCTAssertEqual(r["rows"] as? Int, 128)
        let maxDiff = try XCTUnwrap(r["max_abs_diff"] as? Double)
        XCTAssertEqual(maxDiff, 0.0416, accuracy: 0.0005)
        let worst = try XCTUnwrap(r["worst"] as? [String: Any])
        XCTAssertEqual(worst["row"] as? Int, 120)
        XCTAssertGreaterThanOrEqual(worst["row"] as? Int ?? 0, 64, "the worst row is one whose categorical columns hold vocabulary values")
        let decisions = try XCTUnwrap(r["decisions"] as? [String: Any])
        XCTAssertEqual(decisions["flips"] as? Int, 0)
        XCTAssertEqual(decisions["threshold"] as? Double, 0.5)
        // The first half of the rows (random unit vectors) agree closely.
        for row in r["worst_rows"] as? [[String: Any]] ?? [] where (row["abs_diff"] as? Double ?? 0) > 1e-3 {
            XCTAssertGreaterThanOrEqual(row["row"] as? Int ?? 0, 64)
        }
    }

    func testL14ZipAgainstThePortFlipsOneDecision() throws {
        let run = try CLI.run(["compare", try Fixtures.modelFile("clip_autokeras_binary_nsfw.zip"),
                               try Fixtures.modelFile("clip_ViT-L-14_openai_binary_nsfw_head.pth"),
                               "--inputs", Fixtures.reference("clip_autokeras_binary_nsfw.npz")])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stdout.contains("max |A−B|   0.258 at row 66"), run.stdout)
        XCTAssertTrue(run.stdout.contains("decisions   1 of 128 flip at threshold 0.5 (A's card)"), run.stdout)
        XCTAssertTrue(run.stdout.split(separator: "\n").allSatisfy { $0.count <= 80 })
    }

    func testMaxAbsDiffTurnsADifferenceIntoExit1() throws {
        let args = ["compare", try Fixtures.modelFile("clip_autokeras_nsfw_b32.zip"),
                    try Fixtures.modelFile("clip_ViT-B-32_openai_binary_nsfw_head.pth"),
                    "--inputs", Fixtures.reference("clip_autokeras_nsfw_b32.npz")]
        let strict = try CLI.run(args + ["--max-abs-diff", "0.01", "--json"])
        XCTAssertEqual(strict.status, 1)
        XCTAssertEqual(try json(strict)["within_limit"] as? Bool, false)
        let loose = try CLI.run(args + ["--max-abs-diff", "0.05"])
        XCTAssertEqual(loose.status, 0)
        XCTAssertTrue(loose.stdout.contains("within --max-abs-diff 0.05"))
    }

    func testRandomInputsAreRepeatableBySeed() throws {
        let a = try Fixtures.modelFile("clip_ViT-B-32_openai_binary_nsfw_head.pth")
        let b = try Fixtures.modelFile("clip_autokeras_nsfw_b32.zip")
        let first = try CLI.run(["compare", a, b, "--random", "300", "--seed", "5", "--json"])
        let again = try CLI.run(["compare", a, b, "--random", "300", "--seed", "5", "--json"])
        let other = try CLI.run(["compare", a, b, "--random", "300", "--seed", "6", "--json"])
        XCTAssertEqual(first.status, 0, first.stderr)
        XCTAssertEqual(first.stdout, again.stdout)
        XCTAssertNotEqual(first.stdout, other.stdout)
        let r = try json(first)
        XCTAssertEqual(try JSONSchema.documented("clipsafety-compare/1").violations(of: r), [])
        let inputs = try XCTUnwrap(r["inputs"] as? [String: Any])
        XCTAssertEqual(inputs["kind"] as? String, "random")
        XCTAssertEqual(inputs["seed"] as? Int, 5)
        XCTAssertEqual(r["rows"] as? Int, 300)
        XCTAssertEqual(first.stderr, "", "random rows are unit length: no input warning")
    }

    func testAModelAgainstItsConversionIsIdentical() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let npy = try Fixtures.modelFile("violence_detection_vit_b_32.npy")
        let native = dir.file("v.safetensors")
        XCTAssertEqual(try CLI.run(["convert", npy, "-o", native]).status, 0)
        let run = try CLI.run(["compare", npy, native, "--inputs", Fixtures.reference("violence_detection_vit_b_32.npz"), "--json"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let r = try json(run)
        XCTAssertEqual(r["max_abs_diff"] as? Double, 0)
        let decisions = try XCTUnwrap(r["decisions"] as? [String: Any])
        XCTAssertEqual(decisions["rule"] as? String, "argmax")
        XCTAssertEqual(decisions["flips"] as? Int, 0)
        XCTAssertEqual((r["inputs"] as? [String: Any])?["member"] as? String, "inputs")
    }

    func testDifferentWidthsExit65NamingBothModels() throws {
        let a = try Fixtures.modelFile("violence_detection_vit_b_32.npy")
        let b = try Fixtures.modelFile("violence_detection_vit_l_14.npy")
        let run = try CLI.run(["compare", a, b])
        XCTAssertEqual(run.status, 65)
        XCTAssertTrue(run.stderr.contains(a) && run.stderr.contains(b) && run.stderr.contains("512") && run.stderr.contains("768"), run.stderr)
    }

    func testInputsOfTheWrongWidthExit65() throws {
        let m = try Fixtures.modelFile("violence_detection_vit_b_32.npy")
        let run = try CLI.run(["compare", m, m, "--inputs", Fixtures.reference("violence_detection_vit_l_14.npz")])
        XCTAssertEqual(run.status, 65)
        XCTAssertTrue(run.stderr.contains("768") && run.stderr.contains("512"), run.stderr)
    }

    func testInputsAndRandomTogetherIsAUsageError() throws {
        let m = try Fixtures.modelFile("violence_detection_vit_b_32.npy")
        let run = try CLI.run(["compare", m, m, "--inputs", Fixtures.reference("violence_detection_vit_b_32.npz"), "--random", "5"])
        XCTAssertEqual(run.status, 64)
    }

    func testAnUnknownModelFileExits65() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let junk = try dir.write(Data(repeating: 1, count: 64), to: "junk.safetensors")
        let run = try CLI.run(["compare", junk, try Fixtures.modelFile("violence_detection_vit_b_32.npy")])
        XCTAssertEqual(run.status, 65)
        XCTAssertTrue(run.stderr.contains("junk.safetensors"))
    }
}

extension CompareCommandTests {
    /// Every upstream file is accepted where a native one is: the Keras re-export of the dense
    /// part against upstream's port (both skip the encoding) agree to float32 rounding.
    func testKerasReExportAgainstThePort() throws {
        let run = try CLI.run(["compare", try Fixtures.modelFile("clip_autokeras_nsfw_b32_dense.keras"),
                               try Fixtures.modelFile("clip_ViT-B-32_openai_binary_nsfw_head.pth"), "--random", "500", "--json"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let r = try json(run)
        XCTAssertLessThan(try XCTUnwrap(r["max_abs_diff"] as? Double), 1e-4)
        XCTAssertEqual((r["decisions"] as? [String: Any])?["flips"] as? Int, 0)
    }
}
