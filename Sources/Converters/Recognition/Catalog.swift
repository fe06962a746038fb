import Crypto
import Foundation
import Runtime

/// The files clipsafety knows: upstream's heads and the files made from them (stand-ins,
/// re-exports). A file is recognised by its bytes (SHA-256, or the git blob id where only that
/// is published), never its name, so a converted model gets a complete card (backbone, meaning
/// of the output, threshold and its source) without flags, whatever the file is called.
///
/// `models/catalog.json` lists the same files for the fetch step; a test keeps the two equal.
public struct KnownModel: Sendable {
    public var name: String
    public var file: String
    public var sha256: String?
    public var gitBlob: String?
    public var format: String
    public var backbone: String
    public var embeddingDim: Int
    public var task: ModelCard.Task
    /// SHA-256 of the stand-in the test mirror holds where upstream's file is not mirrored.
    public var mirrorSHA256: String? = nil

    /// The card a converter starts from for this file.
    public var card: ModelCard {
        switch task {
        case .binaryNSFW:
            let raw = backbone == Catalog.h14
            return ModelCard(
                name: name, task: task, backbone: backbone, embeddingDim: embeddingDim,
                inputPrecondition: "l2-normalized",
                outputKind: raw ? .score : .probability,
                outputColumns: ["nsfw"],
                outputRange: raw ? nil : [0, 1],
                labels: ["safe", "nsfw"], positiveLabel: "nsfw",
                threshold: 0.5,
                thresholdSource: raw ? "clip-retrieval" : "upstream README",
                description: raw
                    ? "NSFW score of a \(Self.pretty(backbone)) image embedding: raw regression output (trained on 0/1 targets with MSE, not a probability, not clamped); higher = more likely NSFW"
                    : "Probability that the image behind a \(Self.pretty(backbone)) embedding is NSFW; higher = more likely NSFW")
        case .promptClassifier:
            return ModelCard(
                name: name, task: task, backbone: backbone, embeddingDim: embeddingDim,
                inputPrecondition: "l2-normalized", outputKind: .logits,
                outputColumns: ["other", "violent"], outputRange: [-1, 1],
                labels: ["other", "violent"], positiveLabel: "violent",
                threshold: nil, thresholdSource: "clip-retrieval (argmax; class 1 = violent)",
                description: "Similarity of a \(Self.pretty(backbone)) image embedding to two prompt embeddings; the larger one wins, class 1 = violent")
        case .regression, .unknown:
            return ModelCard(
                name: name, task: task, backbone: backbone, embeddingDim: embeddingDim,
                outputKind: .score, outputColumns: ["score"], labels: [])
        }
    }

    /// `ViT-L-14/openai` → `ViT-L/14`.
    public static func pretty(_ backbone: String) -> String {
        let arch = backbone.split(separator: "/").first.map(String.init) ?? backbone
        let parts = arch.split(separator: "-")
        guard parts.count == 3 else { return arch }
        return "\(parts[0])-\(parts[1])/\(parts[2])"
    }
}

public enum Catalog {
    static let b32 = "ViT-B-32/openai"
    static let l14 = "ViT-L-14/openai"
    static let h14 = "ViT-H-14/laion2b_s32b_b79k"

    public static let models: [KnownModel] = [
        KnownModel(name: "clip_autokeras_nsfw_b32", file: "clip_autokeras_nsfw_b32.zip",
                   sha256: "78715ab9d64485167e8c9ade3b8e6761a17a16c24d114bd47431ac1dab46462b",
                   gitBlob: "71e321addec73904726aaab3b3590c0081855eb7", format: "savedmodel-zip",
                   backbone: b32, embeddingDim: 512, task: .binaryNSFW),
        KnownModel(name: "clip_autokeras_binary_nsfw", file: "clip_autokeras_binary_nsfw.zip",
                   sha256: "905520bb0336accc73ee282c605d926aef90cf14248889d44b9cee50eef71f8a",
                   gitBlob: "f970ee08140edfa48f6846a8561a8376cf87b988", format: "savedmodel-zip",
                   backbone: l14, embeddingDim: 768, task: .binaryNSFW),
        KnownModel(name: "clip_ViT-B-32_openai_binary_nsfw_head", file: "clip_ViT-B-32_openai_binary_nsfw_head.pth",
                   sha256: "615f35e1364b40b14c30e770544345b82d8e558240692ad72eb8eafa466ef25c",
                   gitBlob: "1bb175a682ade29ade4301d53862ec4e332dcde6", format: "torch-zip",
                   backbone: b32, embeddingDim: 512, task: .binaryNSFW),
        KnownModel(name: "clip_ViT-L-14_openai_binary_nsfw_head", file: "clip_ViT-L-14_openai_binary_nsfw_head.pth",
                   sha256: "fc4d70d2eea4e948d13bc27bf7114f5e8d3bd317eb01a4b49b35dcf1a3d672c6",
                   gitBlob: "8efffde1d7aa19a3b71398be055f86a29c746b4d", format: "torch-zip",
                   backbone: l14, embeddingDim: 768, task: .binaryNSFW),
        KnownModel(name: "violence_detection_vit_b_32", file: "violence_detection_vit_b_32.npy",
                   sha256: "76909cca3e77abbbb21313895756773a9c6fb26c9cc743f3ef0625f025741982",
                   gitBlob: "309409588f69d5f81fffae515e876dfaff3879dd", format: "npy",
                   backbone: b32, embeddingDim: 512, task: .promptClassifier),
        KnownModel(name: "violence_detection_vit_l_14", file: "violence_detection_vit_l_14.npy",
                   sha256: "cc08f81ef50b1ef71452ddc87285fe6fbbc01b6fe8f8b8c24482c386ef2ab7e1",
                   gitBlob: "ceb579dcfbdf30239bf86f08cf8e0cd91a6452d6", format: "npy",
                   backbone: l14, embeddingDim: 768, task: .promptClassifier),
        KnownModel(name: "h14_nsfw", file: "h14_nsfw.pth",
                   sha256: nil, gitBlob: "5c5d8ecea5da82f9e6f1201692691f9f8874759d", format: "torch-zip",
                   backbone: h14, embeddingDim: 1024, task: .binaryNSFW,
                   mirrorSHA256: "6415515b162bffce7d31a636ec03d2898a50af9b9b150d62b42100888849dcdc"),
        KnownModel(name: "h14_nsfw_legacy", file: "h14_nsfw_legacy.pth",
                   sha256: "bdc842242fc4e342858204d2b2d18af5a073a90b7df311b6fc1c8b623ffc3d42",
                   gitBlob: nil, format: "torch-legacy", backbone: h14, embeddingDim: 1024, task: .binaryNSFW),
        KnownModel(name: "clip_autokeras_nsfw_b32_dense_h5", file: "clip_autokeras_nsfw_b32_dense.h5",
                   sha256: "06f33861188bab3e4efcbc50e38ea234d6bb04ae17f07861e82f066570b0ff15",
                   gitBlob: nil, format: "keras-h5", backbone: b32, embeddingDim: 512, task: .binaryNSFW),
        KnownModel(name: "clip_autokeras_nsfw_b32_dense_keras", file: "clip_autokeras_nsfw_b32_dense.keras",
                   sha256: "9c0fb6f89fe243d070f884fef9dde4f88d14e17299af27207b1912f925abf0e8",
                   gitBlob: nil, format: "keras-v3", backbone: b32, embeddingDim: 512, task: .binaryNSFW),
        KnownModel(name: "clip_autokeras_binary_nsfw_dense_h5", file: "clip_autokeras_binary_nsfw_dense.h5",
                   sha256: "c19fb0fd7ceb0da8ecbf1d4844165e5b457289ef651387684af797ff0868b403",
                   gitBlob: nil, format: "keras-h5", backbone: l14, embeddingDim: 768, task: .binaryNSFW),
        KnownModel(name: "clip_autokeras_binary_nsfw_dense_keras", file: "clip_autokeras_binary_nsfw_dense.keras",
                   sha256: "57fb254532fb7c03366e679648155ebf25431e3dfed3b726793196efb4437fc0",
                   gitBlob: nil, format: "keras-v3", backbone: l14, embeddingDim: 768, task: .binaryNSFW),
    ]

    /// How a file was matched to its entry.
    public enum Match: String, Sendable, Codable {
        /// The file's SHA-256 is the entry's (or its mirrored stand-in's).
        case sha256
        /// The file's git blob id is the entry's (only that is published for the file).
        case gitBlob = "git-blob"
    }

    /// The catalog entry whose bytes these are, matched by SHA-256 or git blob id.
    public static func lookup(bytes: Data) -> KnownModel? { identify(bytes: bytes)?.model }

    /// The entry and how it matched; `sha` may pass a digest already computed.
    public static func identify(bytes: Data, sha: String? = nil) -> (model: KnownModel, match: Match)? {
        let digest = sha ?? sha256Hex(bytes)
        if let m = lookup(sha256: digest) { return (m, .sha256) }
        let blob = gitBlobID(bytes)
        return models.first(where: { $0.gitBlob == blob }).map { ($0, .gitBlob) }
    }

    /// The entry whose file (or mirrored stand-in) has this SHA-256.
    public static func lookup(sha256 digest: String) -> KnownModel? {
        models.first { $0.sha256 == digest || $0.mirrorSHA256 == digest }
    }

    /// Git's blob id: SHA-1 of `blob <size>\0` followed by the bytes.
    public static func gitBlobID(_ bytes: Data) -> String {
        var h = Insecure.SHA1()
        h.update(data: Data("blob \(bytes.count)\0".utf8))
        h.update(data: bytes)
        return h.finalize().map { String(format: "%02x", $0) }.joined()
    }
}
