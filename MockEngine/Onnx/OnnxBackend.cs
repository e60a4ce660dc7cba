using System.Text;
using HybridServing.MockEngine.Performance;

namespace HybridServing.MockEngine.Onnx;

/// <summary>
/// One request's sequence in the ONNX backend: its tokens (prompt then generated), the adapter weights
/// it was admitted with (kept even if the adapter is unloaded meanwhile, as vLLM finishes such
/// requests), its sampler and what it has said so far.
/// </summary>
internal sealed class Generation(List<int> prompt, AdapterWeights? adapter, SamplingParameters sampling, Random random)
{
    private readonly StringBuilder _text = new();

    public List<int> Tokens { get; } = prompt;
    public int PromptLength { get; } = prompt.Count;
    public AdapterWeights? Adapter { get; } = adapter;
    public SamplingParameters Sampling { get; } = sampling;
    public Random Random { get; } = random;
    public int Generated => Tokens.Count - PromptLength;
    /// <summary>The text the last token added (after a stop string: the part before it).</summary>
    public string LastPiece { get; private set; } = "";
    /// <summary>vLLM's stop_reason: the stop string that ended the answer, else null.</summary>
    public string? StopReason { get; private set; }

    /// <summary>Appends a sampled id; true when the answer is over (end of turn or a stop string).</summary>
    public bool Accept(int id, TinyVocabulary vocabulary)
    {
        Tokens.Add(id);
        if (id == TinyVocabulary.EndOfTurn)
        {
            LastPiece = "";
            return true;
        }
        var piece = vocabulary.Text(id);
        var before = _text.Length;
        _text.Append(piece);
        // As vLLM, stop strings count only once min_tokens are out.
        if (Generated >= Sampling.MinTokens)
        {
            foreach (var stop in Sampling.Stop)
            {
                // Only a match that ends in the new text can be new.
                var from = Math.Max(0, before - stop.Length + 1);
                var at = _text.ToString(from, _text.Length - from).IndexOf(stop, StringComparison.Ordinal);
                if (at < 0) continue;
                // vLLM leaves the stop string out of the output; text before it in this piece is kept.
                LastPiece = piece[..Math.Max(0, from + at - before)];
                StopReason = stop;
                return true;
            }
        }
        LastPiece = piece;
        return false;
    }
}

/// <summary>
/// The ONNX backend: model, session and vocabulary, and the step executor the performance model's
/// driver calls for every step. The scheduler (batching, max_num_seqs, token budget, KV blocks,
/// max_loras slots and the max_cpu_loras LRU) stays the performance model's; this computes the
/// tokens of the rows that emit one in the step, all in one batched run.
/// </summary>
internal sealed class OnnxBackend : IStepExecutor, IDisposable
{
    private readonly Random _unseeded;

    public OnnxBackend(MockEngineOptions options)
    {
        Model = new TinyModel(options.EffectiveMaxModelLen, options.Seed);
        Runtime = new TinyRuntime(Model);
        Vocabulary = new TinyVocabulary();
        _unseeded = new Random(options.Seed);
    }

    public TinyModel Model { get; }
    public TinyRuntime Runtime { get; }
    public TinyVocabulary Vocabulary { get; }

    /// <summary>A new sequence; without a request seed the sampler draws from the engine's seeded stream.</summary>
    public Generation Start(List<int> prompt, AdapterWeights? adapter, SamplingParameters sampling)
    {
        int seed;
        if (sampling.Seed is { } s) seed = unchecked((int)(s ^ (s >> 32)));
        else lock (_unseeded) seed = _unseeded.Next();
        return new Generation(prompt, adapter, sampling, new Random(seed));
    }

    public void Execute(StepPlan plan)
    {
        var emitting = new List<(ModelRequest Request, Generation Generation)>();
        foreach (var (request, tokens) in plan.Scheduled)
        {
            // A prefill chunk that is not the last emits nothing; without a KV cache it needs no work either.
            if (request.ExecutorState is Generation g && request.ComputedTokens + tokens >= request.TotalTokens)
                emitting.Add((request, g));
        }
        if (emitting.Count == 0) return;
        var logits = Runtime.Logits([.. emitting.Select(e => new BatchRow(e.Generation.Tokens, e.Generation.Adapter))]);
        for (var i = 0; i < emitting.Count; i++)
        {
            var (request, generation) = emitting[i];
            var row = logits[i];
            if (generation.Sampling.IgnoreEos || generation.Generated < generation.Sampling.MinTokens)
                row[TinyVocabulary.EndOfTurn] = float.NegativeInfinity;
            var id = Sampler.Next(row, generation.Sampling, generation.Random);
            if (generation.Accept(id, Vocabulary))
            {
                request.FinishReason = "stop";
                request.EndRequested = true;
            }
        }
    }

    public void Dispose() => Runtime.Dispose();
}
