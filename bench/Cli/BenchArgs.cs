using System.Globalization;

namespace HybridServing.Bench.Cli;

/// <summary>A wrong command-line value; the message names the flag. Exit code 2.</summary>
internal sealed class BenchUsageException(string message) : Exception(message);

/// <summary>
/// Parses <c>--flag value</c> / <c>--flag=value</c> / <c>--switch</c> against the flags a command
/// declares. Every value is validated where it is read, so a bad one fails with the flag's name.
/// </summary>
internal sealed class BenchArgs
{
    private readonly Dictionary<string, string> _values = new(StringComparer.Ordinal);
    private readonly HashSet<string> _switches = new(StringComparer.Ordinal);

    public BenchArgs(string command, IReadOnlyList<string> args, IReadOnlySet<string> valued, IReadOnlySet<string> switches)
    {
        for (var i = 0; i < args.Count; i++)
        {
            var arg = args[i];
            if (!arg.StartsWith("--", StringComparison.Ordinal))
                throw new BenchUsageException($"{command}: unexpected argument '{arg}' (flags start with --; see {command} --help)");
            var flag = arg;
            string? inline = null;
            var eq = arg.IndexOf('=', StringComparison.Ordinal);
            if (eq > 0) { flag = arg[..eq]; inline = arg[(eq + 1)..]; }
            if (switches.Contains(flag))
            {
                if (inline is not null) throw new BenchUsageException($"{flag}: takes no value (got '{inline}')");
                _switches.Add(flag);
                continue;
            }
            if (!valued.Contains(flag)) throw new BenchUsageException($"{command}: unknown flag '{flag}' (see {command} --help)");
            if (inline is null)
            {
                if (i + 1 >= args.Count || args[i + 1].StartsWith("--", StringComparison.Ordinal))
                    throw new BenchUsageException($"{flag}: expects a value");
                inline = args[++i];
            }
            _values[flag] = inline;
        }
    }

    /// <summary>Every flag and value as given (recorded with the results so a run can be repeated).</summary>
    public IReadOnlyDictionary<string, string> Given => _values;

    public bool Has(string flag) => _switches.Contains(flag);

    public string String(string flag, string fallback, IReadOnlyList<string>? choices = null)
    {
        var value = _values.GetValueOrDefault(flag, fallback);
        if (choices is not null && !choices.Contains(value, StringComparer.Ordinal))
            throw new BenchUsageException($"{flag}: '{value}' is not one of {string.Join(", ", choices)}");
        return value;
    }

    public int Int(string flag, int fallback, int min, int max = int.MaxValue)
    {
        if (!_values.TryGetValue(flag, out var text)) return fallback;
        if (!int.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var v))
            throw new BenchUsageException($"{flag}: '{text}' is not an integer");
        if (v < min || v > max) throw new BenchUsageException($"{flag}: {v} is out of range [{min}, {max}]");
        return v;
    }

    public double Double(string flag, double fallback, double min, double max = double.MaxValue)
    {
        if (!_values.TryGetValue(flag, out var text)) return fallback;
        if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) || !double.IsFinite(v))
            throw new BenchUsageException($"{flag}: '{text}' is not a number");
        if (v < min || v > max)
            throw new BenchUsageException($"{flag}: {v.ToString(CultureInfo.InvariantCulture)} is out of range [{min.ToString(CultureInfo.InvariantCulture)}, {max.ToString(CultureInfo.InvariantCulture)}]");
        return v;
    }

    /// <summary>A duration in seconds (fractions allowed), e.g. <c>--duration 5</c> or <c>2.5</c>.</summary>
    public TimeSpan Seconds(string flag, double fallback, double min, double max = 3600) =>
        TimeSpan.FromSeconds(Double(flag, fallback, min, max));

    /// <summary>A comma-separated list of integers, e.g. <c>--connections 8,32</c>.</summary>
    public IReadOnlyList<int> IntList(string flag, IReadOnlyList<int> fallback, int min, int max = int.MaxValue)
    {
        if (!_values.TryGetValue(flag, out var text)) return fallback;
        var list = new List<int>();
        foreach (var part in text.Split(',', StringSplitOptions.TrimEntries))
        {
            if (!int.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out var v))
                throw new BenchUsageException($"{flag}: '{part}' is not an integer (expected a comma-separated list, e.g. 8,32)");
            if (v < min || v > max) throw new BenchUsageException($"{flag}: {v} is out of range [{min}, {max}]");
            list.Add(v);
        }
        return list;
    }

    /// <summary>A rank mix such as <c>8:40,16:30,32:20,64:10</c> (weights, normalised).</summary>
    public IReadOnlyList<(int Rank, double Weight)> RankMix(string flag, IReadOnlyList<(int, double)> fallback)
    {
        if (!_values.TryGetValue(flag, out var text)) return fallback;
        var mix = new List<(int, double)>();
        foreach (var part in text.Split(',', StringSplitOptions.TrimEntries))
        {
            var kv = part.Split(':');
            if (kv.Length != 2
                || !int.TryParse(kv[0], NumberStyles.None, CultureInfo.InvariantCulture, out var rank) || rank < 1
                || !double.TryParse(kv[1], NumberStyles.Float, CultureInfo.InvariantCulture, out var w) || !(w > 0) || !double.IsFinite(w))
                throw new BenchUsageException($"{flag}: '{part}' is not rank:weight with rank >= 1 and weight > 0 (e.g. 8:40,16:30,32:20,64:10)");
            mix.Add((rank, w));
        }
        return mix;
    }
}
