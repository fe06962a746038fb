import Converters
import Foundation
import Runtime

/// The model card in one sentence a person understands: which embeddings go in, what comes
/// out and how to read it, and where the decision rule comes from.
///
///     ViT-L/14 embeddings (768, L2-normalised) → probability that the image is NSFW;
///     0.5 threshold (upstream README)
public enum CardText {
    public static func sentence(_ card: ModelCard) -> String {
        "\(input(card)) → \(output(card))"
    }

    /// `ViT-L/14 embeddings (768, L2-normalised)`.
    static func input(_ card: ModelCard) -> String {
        let backbone = card.backbone == "unknown" || card.backbone.isEmpty
            ? "embeddings of an unknown CLIP backbone"
            : "\(KnownModel.pretty(card.backbone)) embeddings"
        var facts = ["\(card.embeddingDim)"]
        switch card.inputPrecondition {
        case "l2-normalized": facts.append("L2-normalised")
        case "none", "": break
        default: facts.append(card.inputPrecondition)
        }
        return "\(backbone) (\(facts.joined(separator: ", ")))"
    }

    static func output(_ card: ModelCard) -> String {
        let label = card.positiveLabel ?? card.outputColumns.first ?? "positive"
        let positive = label.lowercased() == "nsfw" ? "NSFW" : label
        switch card.task {
        case .promptClassifier:
            var text = "argmax of prompt similarities (\(card.outputColumns.joined(separator: ", ")))"
            if let p = card.positiveLabel, let i = card.labels.firstIndex(of: p) {
                text += ", class \(i) = \(p)"
            }
            return text + source(card)
        case .unknown:
            let kind = card.outputKind == .probability ? "values in [0, 1]" : "values"
            return "\(kind) of unstated meaning (\(card.outputColumns.joined(separator: ", "))); no decision is made" + source(card)
        case .binaryNSFW, .regression:
            var text: String
            switch card.outputKind {
            case .probability:
                text = card.task == .binaryNSFW ? "probability that the image is \(positive)"
                    : "probabilities (\(card.outputColumns.joined(separator: ", ")))"
            case .score:
                let what = card.task == .binaryNSFW ? "\(positive) score" : "scores (\(card.outputColumns.joined(separator: ", ")))"
                text = card.outputRange == nil ? "\(what): raw, unbounded, not a probability" : "\(what) in \(range(card.outputRange))"
            case .logits:
                text = "logits (\(card.outputColumns.joined(separator: ", ")))"
            }
            if let t = card.threshold {
                text += "; \(number(t)) threshold" + (card.thresholdSource.map { " (\($0))" } ?? "")
            }
            return text
        }
    }

    static func source(_ card: ModelCard) -> String {
        guard let s = card.thresholdSource else { return "" }
        // The catalog's source for prompt heads already names the rule: keep only where it is from.
        let from = s.split(separator: "(").first.map { $0.trimmingCharacters(in: .whitespaces) } ?? s
        return " (\(from))"
    }

    static func range(_ r: [Double]?) -> String {
        guard let r, r.count == 2 else { return "an unknown range" }
        return "[\(number(r[0])), \(number(r[1]))]"
    }

    /// `0.5`, `1`, `1e-07`: the shortest text that reads back to the same value.
    public static func number(_ v: Double) -> String {
        if v == v.rounded(), Swift.abs(v) < 1e15 { return String(Int64(v)) }
        return "\(v)"
    }
}
