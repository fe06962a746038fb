import Foundation
import Runtime

/// One step of a head's forward pass over state-dict tensors: what `--arch` spells out and
/// what recognising a known head produces.
public enum ArchStep: Equatable, Sendable {
    /// `(x − <prefix>.mean) / (sqrt(<prefix>.variance) + epsilon)`, upstream's PyTorch port.
    case normalize(prefix: String, epsilon: Double)
    /// `x · <prefix>.weightᵀ + <prefix>.bias` (the bias only when the state dict has it).
    case linear(prefix: String)
    case relu
    case sigmoid
}

/// An architecture spec: the steps a state dict's tensors are run through.
///
/// Syntax (docs/ARCH-SPEC.md): steps separated by commas, white space around them ignored.
///
///     spec  = step *( "," step )
///     step  = "linear" [ ":" PREFIX ]   ; PREFIX.weight [out, in], optional PREFIX.bias [out];
///                                      ; no PREFIX: the root-level `weight` and `bias`
///           / "normalize:" PREFIX [ ":" EPSILON ]
///                                      ; PREFIX.mean, PREFIX.variance; sqrt(var) + EPSILON,
///                                      ; EPSILON defaults to 1e-10 (upstream's port)
///           / "relu" / "sigmoid"
///
/// Example, upstream's B/32 port: `normalize:norm,linear:linear_1,relu,linear:linear_2,relu,linear:linear_3,sigmoid`.
/// Every floating-point tensor of the state dict must be used by some step, so that no weight
/// is silently dropped.
public struct ArchSpec: Equatable, Sendable {
    public var steps: [ArchStep]

    public static let portEpsilon = 1e-10

    public init(steps: [ArchStep]) { self.steps = steps }

    /// Parses the `--arch` text; errors name the step and say what is accepted.
    public init(parsing text: String) throws {
        var steps: [ArchStep] = []
        let parts = text.split(separator: ",", omittingEmptySubsequences: false)
        for (i, raw) in parts.enumerated() {
            let step = raw.trimmingCharacters(in: .whitespaces)
            let fields = step.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
            func bad(_ why: String) -> ClipSafetyError {
                .usage("--arch step \(i + 1) '\(step)': \(why) (steps: linear[:PREFIX], normalize:PREFIX[:EPSILON], relu, sigmoid; see docs/ARCH-SPEC.md)")
            }
            switch fields[0] {
            case "relu", "sigmoid":
                guard fields.count == 1 else { throw bad("takes no argument") }
                steps.append(fields[0] == "relu" ? .relu : .sigmoid)
            case "linear":
                // `linear` and `linear:` name the root-level `weight`/`bias`.
                guard fields.count <= 2 else { throw bad("takes one prefix") }
                steps.append(.linear(prefix: fields.count == 2 ? fields[1] : ""))
            case "normalize":
                guard fields.count >= 2, !fields[1].isEmpty else { throw bad("needs a prefix") }
                var eps = Self.portEpsilon
                if fields.count == 3 {
                    guard let e = Double(fields[2]), e.isFinite, e >= 0 else { throw bad("epsilon must be a non-negative number") }
                    eps = e
                }
                steps.append(.normalize(prefix: fields[1], epsilon: eps))
            case "":
                throw bad("is empty")
            default:
                throw bad("unknown step")
            }
        }
        self.steps = steps
    }

    /// The spec text that parses back to these steps.
    public var text: String {
        steps.map { step -> String in
            switch step {
            case .normalize(let p, let e): return e == Self.portEpsilon ? "normalize:\(p)" : "normalize:\(p):\(e)"
            case .linear(let p): return p.isEmpty ? "linear" : "linear:\(p)"
            case .relu: return "relu"
            case .sigmoid: return "sigmoid"
            }
        }.joined(separator: ",")
    }
}

extension ArchSpec {
    /// The prefixes the steps name, in order.
    var prefixes: [String] {
        steps.compactMap { step in
            switch step {
            case .normalize(let p, _), .linear(let p): return p
            case .relu, .sigmoid: return nil
            }
        }
    }

    /// The tensor `<prefix>.<leaf>`, or `<leaf>` alone for the empty prefix (a root-level
    /// `weight`/`bias`, as LAION's linear aesthetic heads store them).
    static func name(_ prefix: String, _ leaf: String) -> String {
        prefix.isEmpty ? leaf : prefix + "." + leaf
    }
}
