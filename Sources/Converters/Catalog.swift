import Crypto
import Foundation
import Runtime

/// The upstream heads clipsafety knows, recognised by the bytes of the file (SHA-256, or the
/// git blob id where only that is published), so that a converted model gets a complete card
/// (backbone, meaning of the output, threshold and its source) without flags.
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

    /// The card a converter starts from for this file.
    public var card: ModelCard {
        switch task {
        case .binaryNSFW:
            let raw = file.hasPrefix("h14_nsfw")
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
        case .regression:
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
                   backbone: h14, embeddingDim: 1024, task: .binaryNSFW),
    ]

    /// The catalog entry whose bytes these are, matched by SHA-256 or git blob id.
    public static func lookup(bytes: Data) -> KnownModel? {
        let sha = sha256Hex(bytes)
        if let m = models.first(where: { $0.sha256 == sha }) { return m }
        let blob = gitBlobID(bytes)
        return models.first(where: { $0.gitBlob == blob })
    }

    /// Card defaults for a file that is not in the catalog but is recognisably one of its
    /// heads (a stand-in, a re-export): the model whose name the file name starts with.
    public static func lookup(fileName: String) -> KnownModel? {
        let base = (fileName as NSString).lastPathComponent
        return models.sorted { $0.name.count > $1.name.count }.first { base.hasPrefix($0.name) }
    }

    /// Git's blob id: SHA-1 of `blob <size>\0` followed by the bytes.
    public static func gitBlobID(_ bytes: Data) -> String {
        var h = Insecure.SHA1()
        h.update(data: Data("blob \(bytes.count)\0".utf8))
        h.update(data: bytes)
        return h.finalize().map { String(format: "%02x", $0) }.joined()
    }
}
