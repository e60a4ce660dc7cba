using System.Text;

namespace HybridServing.TestKit;

/// <summary>What a fuzz run did: executions, and each distinct crash (exception type and first frame) with the input that caused it.</summary>
public sealed record FuzzReport(string Target, long Executions, IReadOnlyList<(string Crash, byte[] Input)> Crashes)
{
    /// <summary>Null when nothing crashed; else each crash with its input as base64 (paste it into a regression test).</summary>
    public string? Problems() => Crashes.Count == 0 ? null
        : $"{Target}: {Crashes.Count} distinct crash(es) in {Executions} executions:\n"
          + string.Join("\n", Crashes.Select(c => $"{c.Crash}\n  input (base64): {Convert.ToBase64String(c.Input)}").Take(10));

    public override string ToString() => $"{Target}: {Executions} executions, {Crashes.Count} crashes";
}

/// <summary>
/// A seeded mutational fuzzer (AFL-style byte and token mutations, splicing between seeds) that runs a bounded number
/// of executions, deterministic for a given seed. Not coverage-guided: inputs that reach new code are not kept, so the
/// seed corpus must already reach the interesting paths. <c>FUZZ_EXECUTIONS</c> and <c>FUZZ_SEED</c> override the
/// bounds for longer runs. An exception is a crash unless <c>allowed</c> says the target documents it.
/// </summary>
public static class Fuzzer
{
    private static readonly byte[][] Tokens =
    [
        .. new[]
        {
            "{", "}", "[", "]", "\"", ":", ",", "\\", "\\u0000", "\\ud800", "null", "true", "-", "0", "-0", "1e309", "-1",
            "4294967296", "9223372036854775808", "18446744073709551616", "NaN", "+Inf", "0.5", "\n", "\r\n", "\t", " ", "#",
            "---\n", "- ", ": ", "&a ", "*a", "!!binary ", "'", "|\n", ">\n", "?", "=", "{}", "[]", "\"\"", "\u00e9", "\uffff",
        }.Select(Encoding.UTF8.GetBytes),
        [0x00], [0xFF], [0xC3], [0xED, 0xA0, 0x80], [0xEF, 0xBB, 0xBF],
    ];

    /// <summary>The seed corpus committed at <c>tests/{project}/Fuzz/corpus/{target}/</c> (every file).</summary>
    public static byte[][] Corpus(string project, string target)
    {
        var root = Contracts.Resources.CrdGenerator.FindRepositoryRoot(AppContext.BaseDirectory)
            ?? throw new InvalidOperationException($"repository root not found above {AppContext.BaseDirectory}");
        var dir = Path.Combine(root, "tests", project, "Fuzz", "corpus", target);
        var files = Directory.Exists(dir) ? Directory.GetFiles(dir).Order(StringComparer.Ordinal).ToArray() : [];
        if (files.Length == 0) throw new InvalidOperationException($"no seed corpus in {dir}");
        return [.. files.Select(File.ReadAllBytes)];
    }

    public static FuzzReport Run(string target, byte[][] seeds, int executions, Action<byte[]> run, Func<Exception, bool>? allowed = null, int seed = 1)
    {
        if (int.TryParse(Environment.GetEnvironmentVariable("FUZZ_EXECUTIONS"), out var n) && n > 0) executions = n;
        if (int.TryParse(Environment.GetEnvironmentVariable("FUZZ_SEED"), out var s)) seed = s;
        var random = new Random(seed);
        var crashes = new Dictionary<string, (string Display, byte[] Input)>(StringComparer.Ordinal);
        long done = 0;
        void Execute(byte[] input)
        {
            done++;
            try { run(input); }
            catch (Exception e) when (allowed?.Invoke(e) != true)
            {
                var frames = e.StackTrace?.Split('\n').Select(f => f.Trim()).ToArray() ?? [];
                // The throwing frame and the first of this project's frames locate the defect.
                var ours = frames.FirstOrDefault(f => f.StartsWith("at HybridServing.", StringComparison.Ordinal) && !f.Contains(".Tests.", StringComparison.Ordinal)) ?? "";
                var key = $"{e.GetType().FullName} {frames.FirstOrDefault()} {ours}";
                if (!crashes.TryGetValue(key, out var known) || input.Length < known.Input.Length)
                    crashes[key] = ($"{e.GetType().FullName}: {e.Message.Split('\n')[0]}\n  {frames.FirstOrDefault()}\n  {ours}", input);
            }
            catch (Exception) { }
        }
        foreach (var input in seeds) Execute(input);
        while (done < executions)
        {
            var input = seeds[random.Next(seeds.Length)];
            var stacked = 1 << random.Next(4); // 1..8 mutations at once, as AFL's havoc stage
            for (var i = 0; i < stacked; i++) input = Mutate(input, seeds, random);
            Execute(input);
        }
        return new FuzzReport(target, done, [.. crashes.Values]);
    }

    private static byte[] Mutate(byte[] input, byte[][] seeds, Random random)
    {
        var data = new List<byte>(input);
        int At(bool end = false) => data.Count == 0 ? 0 : random.Next(data.Count + (end ? 1 : 0));
        switch (random.Next(9))
        {
            case 0 when data.Count > 0: // flip a bit
                var i = At();
                data[i] ^= (byte)(1 << random.Next(8));
                break;
            case 1 when data.Count > 0: // an interesting byte
                data[At()] = (byte)(random.Next(3) switch { 0 => 0, 1 => 0xFF, _ => random.Next(256) });
                break;
            case 2: // insert a token
                data.InsertRange(At(end: true), Tokens[random.Next(Tokens.Length)]);
                break;
            case 3 when data.Count > 1: // delete a run
                var start = At();
                data.RemoveRange(start, Math.Min(data.Count - start, 1 + random.Next(16)));
                break;
            case 4 when data.Count > 1: // duplicate a run (deep nesting, repeated keys)
                var from = At();
                var run = data.GetRange(from, Math.Min(data.Count - from, 1 + random.Next(32)));
                var times = 1 + random.Next(random.Next(8) == 0 ? 200 : 4);
                for (var t = 0; t < times; t++) data.InsertRange(from, run);
                break;
            case 5 when data.Count > 0: // truncate
                var keep = At();
                data.RemoveRange(keep, data.Count - keep);
                break;
            case 6: // splice with another seed
                var other = seeds[random.Next(seeds.Length)];
                var cut = At(end: true);
                var otherCut = other.Length == 0 ? 0 : random.Next(other.Length);
                data = [.. data.Take(cut), .. other.Skip(otherCut)];
                break;
            case 7 when data.Count > 0: // replace a digit run with a boundary number
                var digit = data.FindIndex(At(), b => b is >= (byte)'0' and <= (byte)'9');
                if (digit < 0) break;
                var end = digit;
                while (end < data.Count && data[end] is >= (byte)'0' and <= (byte)'9') end++;
                data.RemoveRange(digit, end - digit);
                data.InsertRange(digit, Encoding.ASCII.GetBytes(random.Next(4) switch { 0 => "0", 1 => "-1", 2 => "18446744073709551615", _ => "99999999999999999999999" }));
                break;
            default: // random bytes
                var bytes = new byte[1 + random.Next(8)];
                random.NextBytes(bytes);
                data.InsertRange(At(end: true), bytes);
                break;
        }
        // Keep inputs bounded so a run stays fast.
        return data.Count > 64 * 1024 ? [.. data.Take(64 * 1024)] : [.. data];
    }
}
