using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;
using Microsoft.Extensions.Logging;

namespace HybridServing.TestKit;

/// <summary>
/// Proof that known secret values never leave a component: an <see cref="ILoggerProvider"/> that keeps every log
/// line (message, structured values, scopes, exception with its inner ones), an <see cref="ActivityListener"/>
/// that records every span of this process (name, tags, events, status), and <see cref="Check"/> for any other
/// text (API answers, <c>/metrics</c>, status, events). Each secret is looked for as itself, base64, hex and URL-encoded.
/// </summary>
public sealed class SecretScan : ILoggerProvider
{
    private readonly string[] _needles;
    private readonly ConcurrentQueue<string> _findings = new();
    private readonly ActivityListener _listener;
    private long _logLines, _spans, _texts;

    public SecretScan(params string[] secrets)
    {
        if (secrets.Any(s => s.Length < 8)) throw new ArgumentException("Secrets to scan for must be at least 8 characters long, or they match by chance.");
        _needles = [.. secrets.SelectMany(s => new[]
        {
            s, Convert.ToBase64String(Encoding.UTF8.GetBytes(s)).TrimEnd('='), Convert.ToHexString(Encoding.UTF8.GetBytes(s)),
            Convert.ToHexStringLower(Encoding.UTF8.GetBytes(s)), Uri.EscapeDataString(s),
        }).Distinct()];
        _listener = new ActivityListener
        {
            ShouldListenTo = _ => true,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = Record,
        };
        ActivitySource.AddActivityListener(_listener);
    }

    public long LogLines => Interlocked.Read(ref _logLines);
    public long Spans => Interlocked.Read(ref _spans);
    public long Texts => Interlocked.Read(ref _texts);

    /// <summary>Scans <paramref name="text"/>, found at <paramref name="where"/>, for every secret.</summary>
    public void Check(string where, string? text)
    {
        if (string.IsNullOrEmpty(text)) return;
        Interlocked.Increment(ref _texts);
        foreach (var needle in _needles)
            if (text.Contains(needle, StringComparison.OrdinalIgnoreCase))
                _findings.Enqueue($"{where}: {Excerpt(text, needle)}");
    }

    /// <summary>
    /// Null when clean; else every place a secret appeared, or that too little was captured (a scan of nothing proves nothing).
    /// Use as <c>if (scan.Problems() is { } p) Assert.Fail(p);</c>.
    /// </summary>
    public string? Problems(int minLogLines = 1, int minSpans = 1)
    {
        if (LogLines < minLogLines) return $"only {LogLines} log lines were captured";
        if (Spans < minSpans) return $"only {Spans} spans were captured";
        return _findings.IsEmpty ? null : "secrets leaked:\n" + string.Join("\n", _findings.Distinct().Take(20));
    }

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public void Dispose() => _listener.Dispose();

    private void Record(Activity activity)
    {
        Interlocked.Increment(ref _spans);
        var text = new StringBuilder(activity.OperationName).Append(' ').Append(activity.DisplayName).Append(' ').Append(activity.StatusDescription);
        foreach (var (k, v) in activity.TagObjects) text.Append(' ').Append(k).Append('=').Append(v);
        foreach (var e in activity.Events)
        {
            text.Append(" event ").Append(e.Name);
            foreach (var (k, v) in e.Tags) text.Append(' ').Append(k).Append('=').Append(v);
        }
        foreach (var (k, v) in activity.Baggage) text.Append(" baggage ").Append(k).Append('=').Append(v);
        Check($"span '{activity.Source.Name}/{activity.OperationName}'", text.ToString());
    }

    private static string Excerpt(string text, string needle)
    {
        var at = text.IndexOf(needle, StringComparison.OrdinalIgnoreCase);
        var start = Math.Max(0, at - 80);
        return text.Substring(start, Math.Min(text.Length - start, needle.Length + 160)).ReplaceLineEndings(" ");
    }

    private sealed class Logger(SecretScan scan, string category) : ILogger
    {
        private static readonly AsyncLocal<Scope?> Scopes = new();

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull
        {
            var outer = Scopes.Value;
            Scopes.Value = new Scope(state, outer);
            return new Pop(outer);
        }

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            Interlocked.Increment(ref scan._logLines);
            var text = new StringBuilder(formatter(state, exception));
            if (state is IEnumerable<KeyValuePair<string, object?>> values)
                foreach (var (k, v) in values) text.Append(' ').Append(k).Append('=').Append(v);
            for (var s = Scopes.Value; s is not null; s = s.Outer) text.Append(" scope ").Append(s.State);
            for (var e = exception; e is not null; e = e.InnerException) text.Append(' ').Append(e);
            scan.Check($"log {logLevel} {category}#{eventId.Id}", text.ToString());
        }

        private sealed record Scope(object State, Scope? Outer);

        private sealed class Pop(Scope? outer) : IDisposable
        {
            public void Dispose() => Scopes.Value = outer;
        }
    }
}
