using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using HybridServing.Bench.Cli;
using HybridServing.Bench.Hosting;
using HybridServing.Bench.Results;
using HybridServing.Contracts.Peft;
using HybridServing.MockEngine.Onnx;

namespace HybridServing.Bench.Commands;

/// <summary>
/// <c>onnx-lora</c>: what real multi-LoRA costs on the MockEngine's ONNX backend. Decode steps of
/// the tiny transformer (ONNX Runtime, CPU, one intra-op thread) for each batch size with 0, 1 or 4
/// distinct adapters spread over the rows, in-process; every configuration runs in each repeat in
/// turn, so the base model is measured in the same run and under the same load as the adapters.
/// </summary>
internal static class OnnxLoraCommand
{
    public const string Help = """
        onnx-lora — tokens/s and per-step latency of the ONNX backend's batched multi-LoRA decode step (in-process, CPU).

        Options (defaults in brackets):
          --batches LIST       rows per step, comma-separated [1,8,32]
          --adapters LIST      distinct adapters in the batch (0 = base model only) [0,1,4]
          --prompt-tokens N    tokens each row starts with [32]
          --steps N            measured decode steps per configuration and repeat [32]
          --rank N             adapter rank (q_proj and v_proj, like the sample adapters) [16]
          --repeats N          interleaved repeats; the median is reported [3]
          --seed N             prompts and adapters [1]
          --results DIR        results folder [bench/results]
        """;

    private static readonly HashSet<string> Valued = ["--batches", "--adapters", "--prompt-tokens", "--steps", "--rank", "--repeats", "--seed", "--results"];

    public static int Run(string[] args)
    {
        var a = new BenchArgs("onnx-lora", args, Valued, new HashSet<string>());
        var batches = a.IntList("--batches", [1, 8, 32], 1, 256);
        var adapterCounts = a.IntList("--adapters", [0, 1, 4], 0, 64);
        var promptTokens = a.Int("--prompt-tokens", 32, 1, 256);
        var steps = a.Int("--steps", 32, 1, 256);
        var rank = a.Int("--rank", 16, 1, 64);
        var repeats = a.Int("--repeats", 3, 1, 50);
        var seed = a.Int("--seed", 1, 0);
        var resultsDir = a.String("--results", RepoPaths.DefaultResults);

        var model = new TinyModel(promptTokens + steps + 1, seed: 0);
        using var runtime = new TinyRuntime(model);
        using var temp = new HybridServing.TestKit.TempDirectory("onnx-lora-bench");
        var adapters = Enumerable.Range(0, adapterCounts.Max()).Select(i =>
        {
            var dir = Path.Combine(temp.Path, $"adapter-{i}");
            PeftAdapterWriter.Write(dir, BaseModelShape.For(TinyModel.ShapeName), rank, ["q_proj", "v_proj"], seed + i, trained: true);
            var (weights, problem) = AdapterWeights.Read(PeftAdapter.Read(dir), model);
            return weights ?? throw new InvalidOperationException(problem);
        }).ToArray();

        var configurations = batches.SelectMany(b => adapterCounts.Where(k => k <= b).Select(k => (Batch: b, Adapters: k))).ToArray();
        var samples = configurations.ToDictionary(c => c, _ => new List<double>());
        var random = new Random(seed);
        for (var r = 0; r < repeats; r++)
        {
            foreach (var c in configurations)
            {
                Progress.Log($"repeat {r + 1}/{repeats}: batch {c.Batch}, {c.Adapters} adapter(s)...");
                samples[c].Add(MeanStepSeconds(runtime, c.Batch, c.Adapters == 0 ? [] : adapters[..c.Adapters], promptTokens, steps, random));
            }
        }

        var report = new BenchReport("onnx-lora", a.Given);
        var table = report.Table(
            $"ONNX backend decode step: tiny transformer (test/tiny shapes, vocab {TinyModel.Vocab}), rank-{rank} adapters on q_proj/v_proj, rows start at {promptTokens} tokens, {steps} steps, median of {repeats} interleaved repeats, ORT CPU 1 thread, {Environment.ProcessorCount} shared cores",
            "batch", "distinct adapters", "step ms", "tokens/s", "step time vs base");
        var runs = new JsonArray();
        foreach (var c in configurations)
        {
            var step = Median(samples[c]);
            var baseStep = Median(samples[(c.Batch, 0)]);
            var ratio = samples.ContainsKey((c.Batch, 0)) ? (step / baseStep).ToString("0.00", CultureInfo.InvariantCulture) + "x" : "n/a";
            table.Add(c.Batch.ToString(CultureInfo.InvariantCulture), c.Adapters.ToString(CultureInfo.InvariantCulture),
                (step * 1000).ToString("0.00", CultureInfo.InvariantCulture), (c.Batch / step).ToString("0", CultureInfo.InvariantCulture), ratio);
            runs.Add(new JsonObject
            {
                ["batch"] = c.Batch, ["adapters"] = c.Adapters, ["step_ms_median"] = step * 1000,
                ["step_ms_samples"] = new JsonArray([.. samples[c].Select(s => JsonValue.Create(s * 1000))]),
                ["tokens_per_second"] = c.Batch / step,
            });
        }
        report.Data["runs"] = runs;
        report.Notes.Add("Every step recomputes each row's whole sequence (the backend has no KV cache), so a step's cost grows with the sequence; all configurations see the same lengths.");
        report.Notes.Add("A batch with adapters feeds every target module's gathered A/B stacks (slot 0 zeros for base rows), so even one adapter adds the LoRA matmuls for all rows; more distinct adapters only add slots to gather from.");
        report.Notes.Add("Measured on the shared development machine while other builds and tests ran: compare the ratios, not the absolute times.");
        report.Write(resultsDir);
        return 0;
    }

    /// <summary>Greedy decode of <paramref name="batch"/> rows, adapters round-robin over the rows; mean seconds per step after one warm-up step.</summary>
    private static double MeanStepSeconds(TinyRuntime runtime, int batch, AdapterWeights[] adapters, int promptTokens, int steps, Random random)
    {
        var rows = Enumerable.Range(0, batch).Select(i => (
            Tokens: Enumerable.Range(0, promptTokens).Select(_ => random.Next(TinyModel.Vocab)).ToList(),
            Adapter: adapters.Length == 0 ? null : adapters[i % adapters.Length])).ToArray();
        var greedy = new SamplingParameters { Temperature = 0 };
        double total = 0;
        for (var s = 0; s <= steps; s++)
        {
            var started = Stopwatch.GetTimestamp();
            var logits = runtime.Logits([.. rows.Select(r => new BatchRow(r.Tokens, r.Adapter))]);
            for (var i = 0; i < batch; i++) rows[i].Tokens.Add(Sampler.Next(logits[i], greedy, random));
            // The first step warms the session's shapes; it is not counted.
            if (s > 0) total += Stopwatch.GetElapsedTime(started).TotalSeconds;
        }
        return total / steps;
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }
}
