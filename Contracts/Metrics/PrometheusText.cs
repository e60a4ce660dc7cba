using System.Globalization;

namespace HybridServing.Contracts.Metrics;

/// <summary>One sample of the Prometheus text exposition format.</summary>
public sealed record MetricSample(string Name, IReadOnlyDictionary<string, string> Labels, double Value)
{
    public string? Label(string name) => Labels.TryGetValue(name, out var v) ? v : null;
}

/// <summary>A small, allocation-conscious parser for the Prometheus text format (version 0.0.4).</summary>
public static class PrometheusText
{
    private static readonly IReadOnlyDictionary<string, string> NoLabels = new Dictionary<string, string>();

    /// <summary>Parses every sample; malformed lines are skipped rather than failing the scrape.</summary>
    public static IReadOnlyList<MetricSample> Parse(string text)
    {
        var samples = new List<MetricSample>();
        foreach (var rawLine in text.AsSpan().EnumerateLines())
        {
            var line = rawLine.Trim();
            if (line.IsEmpty || line[0] == '#') continue;
            if (TryParseLine(line, out var sample)) samples.Add(sample);
        }
        return samples;
    }

    private static bool TryParseLine(ReadOnlySpan<char> line, out MetricSample sample)
    {
        sample = null!;
        var nameEnd = line.IndexOfAny('{', ' ', '\t');
        if (nameEnd <= 0) return false;
        var name = line[..nameEnd].ToString();
        var rest = line[nameEnd..];
        var labels = NoLabels;
        if (rest[0] == '{')
        {
            var parsed = new Dictionary<string, string>(StringComparer.Ordinal);
            var i = 1;
            while (i < rest.Length && rest[i] != '}')
            {
                while (i < rest.Length && (rest[i] == ',' || rest[i] == ' ')) i++;
                if (i < rest.Length && rest[i] == '}') break;
                var eq = rest[i..].IndexOf('=');
                if (eq < 0) return false;
                var key = rest.Slice(i, eq).Trim().ToString();
                i += eq + 1;
                if (i >= rest.Length || rest[i] != '"') return false;
                i++;
                var value = new System.Text.StringBuilder();
                while (i < rest.Length && rest[i] != '"')
                {
                    if (rest[i] == '\\' && i + 1 < rest.Length)
                    {
                        i++;
                        value.Append(rest[i] switch { 'n' => '\n', _ => rest[i] });
                    }
                    else value.Append(rest[i]);
                    i++;
                }
                if (i >= rest.Length) return false;
                i++; // closing quote
                parsed[key] = value.ToString();
            }
            if (i >= rest.Length) return false;
            labels = parsed;
            rest = rest[(i + 1)..];
        }
        rest = rest.Trim();
        var space = rest.IndexOfAny(' ', '\t');
        var valueText = space < 0 ? rest : rest[..space];
        if (!TryParseValue(valueText, out var v)) return false;
        sample = new MetricSample(name, labels, v);
        return true;
    }

    private static bool TryParseValue(ReadOnlySpan<char> text, out double value)
    {
        switch (text)
        {
            case "+Inf": value = double.PositiveInfinity; return true;
            case "-Inf": value = double.NegativeInfinity; return true;
            case "NaN": value = double.NaN; return true;
            default: return double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out value);
        }
    }
}
