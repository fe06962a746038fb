import Foundation
import XCTest
@testable import Converters
import Runtime
import TestSupport

/// Limits lowered by the user reach every reader through `ConversionOptions.limits`.
final class ReaderLimitsTests: XCTestCase {
    private func limits(fileBytes: Int? = nil, elements: Int? = nil, uncompressed: Int? = nil) -> ReaderLimits {
        var l = ReaderLimits()
        if let fileBytes { l.maxFileBytes = fileBytes }
        if let elements { l.maxTensorElements = elements }
        if let uncompressed { l.maxUncompressedBytes = uncompressed }
        return l
    }

    private func load(_ file: String, _ limits: ReaderLimits) throws -> NativeModel {
        try ModelLoader.load(path: try Fixtures.modelFile(file), options: ConversionOptions(fileName: file, limits: limits))
    }

    /// Every catalog format loads with the defaults and is refused with each limit lowered.
    private func assertLimitsHonoured(_ file: String, elements: Int, uncompressed: Int) throws {
        XCTAssertNoThrow(try load(file, ReaderLimits()), file)
        assertClipSafetyError([.limitExceeded], containing: "--max-file-bytes", file) { try self.load(file, self.limits(fileBytes: 100)) }
        assertClipSafetyError([.limitExceeded], file) { try self.load(file, self.limits(elements: elements)) }
        assertClipSafetyError([.limitExceeded], file) { try self.load(file, self.limits(uncompressed: uncompressed)) }
    }

    func testTorchZipAndLegacyHonourEveryLimit() throws {
        try assertLimitsHonoured("clip_ViT-L-14_openai_binary_nsfw_head.pth", elements: 1000, uncompressed: 4096)
        try assertLimitsHonoured("h14_nsfw_legacy.pth", elements: 1000, uncompressed: 4096)
    }

    func testNpyHonoursEveryLimit() throws {
        try assertLimitsHonoured("violence_detection_vit_b_32.npy", elements: 1000, uncompressed: 1024)
    }

    func testKerasH5AndKerasV3HonourEveryLimit() throws {
        try assertLimitsHonoured("clip_autokeras_nsfw_b32_dense.h5", elements: 1000, uncompressed: 4096)
        try assertLimitsHonoured("clip_autokeras_nsfw_b32_dense.keras", elements: 1000, uncompressed: 4096)
    }

    func testSavedModelZipHonoursEveryLimit() throws {
        try assertLimitsHonoured("clip_autokeras_nsfw_b32.zip", elements: 1000, uncompressed: 4096)
    }

    /// A description reads no values: a lowered element limit stops the read of one weight.
    func testDescribedKerasWeightsAreReadWithinTheLimits() throws {
        let bytes = try Data(contentsOf: URL(fileURLWithPath: try Fixtures.modelFile("clip_autokeras_nsfw_b32_dense.h5")))
        let d = try FormatRegistry.describe(bytes, limits: limits(elements: 1000))
        let kernel = try XCTUnwrap(d.layers.first { $0.className == "Dense" }?.weights.first.flatMap(d.tensor))
        XCTAssertEqual(kernel.shape, [512, 32])
        assertClipSafetyError([.limitExceeded], containing: "16384 elements") { try kernel.read() }
    }

    /// The SavedModel parts, each given lowered limits directly.
    func testSavedModelPartsHonourTheirLimits() throws {
        let zip = try ZipArchive(bytes: try Data(contentsOf: URL(fileURLWithPath: try Fixtures.modelFile("clip_autokeras_nsfw_b32.zip"))), limits: ReaderLimits())
        func member(_ suffix: String) throws -> Data {
            try XCTUnwrap(try zip.entries.first { $0.name.hasSuffix(suffix) }.map { try zip.read($0) }, suffix)
        }
        let index = try member("variables.index"), data = try member("variables.data-00000-of-00001")
        XCTAssertNoThrow(try SSTableReader(bytes: index, limits: ReaderLimits()))
        assertClipSafetyError([.limitExceeded], containing: "--max-uncompressed-bytes") { try SSTableReader(bytes: index, limits: self.limits(uncompressed: 1024)) }
        assertClipSafetyError([.limitExceeded]) { try TensorBundleReader(index: index, shards: [data], limits: self.limits(uncompressed: 4096)) }
        assertClipSafetyError([.limitExceeded]) { try TensorBundleReader(index: index, shards: [data], limits: self.limits(elements: 1000)) }
        let savedModel = try member("saved_model.pb")
        XCTAssertNoThrow(try SavedModelVocabularies(savedModel: savedModel, limits: ReaderLimits()))
        assertClipSafetyError([.limitExceeded], containing: "1566 elements") { try SavedModelVocabularies(savedModel: savedModel, limits: self.limits(elements: 1000)) }
        var shallow = ReaderLimits()
        shallow.maxDepth = 2
        assertClipSafetyError([.limitExceeded]) { try SavedModelKerasConfig(metadata: try member("keras_metadata.pb"), limits: shallow) }
    }

    func testNativeFileHonoursEveryLimit() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let model = try load("clip_ViT-B-32_openai_binary_nsfw_head.pth", ReaderLimits())
        let path = dir.file("port.safetensors")
        try model.write(to: path)
        let options = { (l: ReaderLimits) in ConversionOptions(fileName: path, limits: l) }
        XCTAssertNoThrow(try ModelLoader.load(path: path, options: options(ReaderLimits())))
        for lowered in [limits(fileBytes: 100), limits(elements: 1000), limits(uncompressed: 4096)] {
            assertClipSafetyError([.limitExceeded]) { try ModelLoader.load(path: path, options: options(lowered)) }
        }
    }

    func testNpzMembersHonourTheElementLimit() throws {
        let path = Fixtures.reference("violence_detection_vit_b_32.npz")
        XCTAssertNoThrow(try NpzArchive.read(contentsOf: path, limits: ReaderLimits()))
        assertClipSafetyError([.limitExceeded]) { try NpzArchive.read(contentsOf: path, limits: self.limits(elements: 10)) }
        assertClipSafetyError([.limitExceeded]) { try NpzArchive.read(contentsOf: path, limits: self.limits(fileBytes: 10)) }
    }

    func testSafetensorsDescriptionHonoursTheFileLimit() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let path = dir.file("plain.safetensors")
        try AtomicFile.write(try SafetensorsFile(metadata: [:], tensors: [Tensor(name: "w", shape: [4], floats: [1, 2, 3, 4])]).serialized(), to: path)
        assertClipSafetyError([.limitExceeded]) { try MappedFile.map(path, limits: self.limits(fileBytes: 16)) }
    }
}
