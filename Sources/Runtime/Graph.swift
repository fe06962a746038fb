/// How `normalize` turns a variance into a denominator (docs/FORMAT.md, `normalize`).
public enum NormalizeDenominator: String, Codable, Sendable {
    /// Keras `Normalization`: `max(sqrt(variance), epsilon)`.
    case maxSqrtVarianceEpsilon = "max(sqrt(variance),epsilon)"
    /// Upstream's PyTorch port: `sqrt(variance) + epsilon`.
    case sqrtVariancePlusEpsilon = "sqrt(variance)+epsilon"
}

/// One categorical input column of `categorical_lookup`.
public struct CategoricalColumn: Codable, Equatable, Sendable {
    /// Zero-based column of the graph input.
    public var column: Int
    /// U8 tensor: the vocabulary keys, each followed by one 0 byte.
    public var keys: String
    /// I64 tensor [n]: the index of each key.
    public var values: String
    /// Index given to a key that is not in the vocabulary.
    public var oovIndex: Int64
    /// The type the input value is rounded to before it is formatted: `.f64` (nil, the default)
    /// or `.f32`, for graphs that cast the input to float32 before formatting it (TensorFlow's
    /// `Cast` then `AsString`, as in the autokeras SavedModels).
    public var keyDType: DType?

    public init(column: Int, keys: String, values: String, oovIndex: Int64, keyDType: DType? = nil) {
        self.column = column
        self.keys = keys
        self.values = values
        self.oovIndex = oovIndex
        self.keyDType = keyDType
    }

    enum CodingKeys: String, CodingKey {
        case column, keys, values
        case oovIndex = "oov_index"
        case keyDType = "key_dtype"
    }
}

/// One step of a native graph. A graph is a list of these, applied in order to the
/// activation matrix (docs/FORMAT.md, "Graph").
public enum GraphOp: Equatable, Sendable {
    /// Replaces NaN by `value` in `columns` (all columns when nil).
    case imputeNaN(columns: [Int]?, value: Float)
    /// Replaces each listed column by the vocabulary index of C `%f` of its float64 input value.
    case categoricalLookup([CategoricalColumn])
    /// `(x - mean) / denominator(variance, epsilon)`, per column.
    case normalize(mean: String, variance: String, denominator: NormalizeDenominator, epsilon: Double)
    /// `x · weightᵀ + bias`, weight [out, in], bias [out] (optional).
    case dense(weight: String, bias: String?)
    case relu
    case sigmoid
    /// `x · promptsᵀ`, prompts [K, D].
    case promptScores(prompts: String)
    /// Adds the label output `argmax` over the columns; the activation is unchanged. Last op only.
    case argmax

    public var opName: String {
        switch self {
        case .imputeNaN: return "impute_nan"
        case .categoricalLookup: return "categorical_lookup"
        case .normalize: return "normalize"
        case .dense: return "dense"
        case .relu: return "relu"
        case .sigmoid: return "sigmoid"
        case .promptScores: return "prompt_scores"
        case .argmax: return "argmax"
        }
    }

    /// Names of the tensors this op reads.
    public var tensorNames: [String] {
        switch self {
        case .imputeNaN, .relu, .sigmoid, .argmax: return []
        case .categoricalLookup(let cols): return cols.flatMap { [$0.keys, $0.values] }
        case .normalize(let m, let v, _, _): return [m, v]
        case .dense(let w, let b): return [w] + (b.map { [$0] } ?? [])
        case .promptScores(let p): return [p]
        }
    }
}

extension GraphOp: Codable {
    enum CodingKeys: String, CodingKey {
        case op, columns, value, mean, variance, denominator, epsilon, weight, bias, prompts
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let op = try c.decode(String.self, forKey: .op)
        switch op {
        case "impute_nan":
            self = .imputeNaN(columns: try c.decodeIfPresent([Int].self, forKey: .columns),
                              value: try c.decode(Float.self, forKey: .value))
        case "categorical_lookup":
            self = .categoricalLookup(try c.decode([CategoricalColumn].self, forKey: .columns))
        case "normalize":
            self = .normalize(mean: try c.decode(String.self, forKey: .mean),
                              variance: try c.decode(String.self, forKey: .variance),
                              denominator: try c.decode(NormalizeDenominator.self, forKey: .denominator),
                              epsilon: try c.decode(Double.self, forKey: .epsilon))
        case "dense":
            self = .dense(weight: try c.decode(String.self, forKey: .weight),
                          bias: try c.decodeIfPresent(String.self, forKey: .bias))
        case "relu": self = .relu
        case "sigmoid": self = .sigmoid
        case "prompt_scores": self = .promptScores(prompts: try c.decode(String.self, forKey: .prompts))
        case "argmax": self = .argmax
        default:
            throw ClipSafetyError.unsupported("graph: unknown op '\(op)'")
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(opName, forKey: .op)
        switch self {
        case .imputeNaN(let columns, let value):
            try c.encodeIfPresent(columns, forKey: .columns)
            try c.encode(value, forKey: .value)
        case .categoricalLookup(let cols):
            try c.encode(cols, forKey: .columns)
        case .normalize(let m, let v, let d, let e):
            try c.encode(m, forKey: .mean)
            try c.encode(v, forKey: .variance)
            try c.encode(d, forKey: .denominator)
            try c.encode(e, forKey: .epsilon)
        case .dense(let w, let b):
            try c.encode(w, forKey: .weight)
            try c.encodeIfPresent(b, forKey: .bias)
        case .promptScores(let p):
            try c.encode(p, forKey: .prompts)
        case .relu, .sigmoid, .argmax:
            break
        }
    }
}
