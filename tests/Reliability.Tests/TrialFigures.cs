using System.Globalization;
using Xunit.Abstractions;

namespace HybridServing.Reliability.Tests;

/// <summary>
/// What one trial did and what it cost: faults injected, requests sent during the trial, requests lost
/// (a client that got neither a complete answer nor a clean OpenAI-shaped error end), and recovery times.
/// Each trial appends one Markdown table row to <see cref="FilePath"/> (the README's figures table is
/// built from it) and writes it to the test output.
/// </summary>
public sealed record TrialFigures(string Trial, int FaultsInjected, int RequestsSent, int RequestsLost, IReadOnlyList<TimeSpan> Recoveries, string Notes = "")
{
    /// <summary>HYBRIDSERVING_FAULT_FIGURES, else fault-figures.md next to the test assembly.</summary>
    public static string FilePath =>
        Environment.GetEnvironmentVariable("HYBRIDSERVING_FAULT_FIGURES") is { Length: > 0 } path
            ? path
            : Path.Combine(AppContext.BaseDirectory, "fault-figures.md");

    private static readonly Lock FileLock = new();

    public string Row()
    {
        var sorted = Recoveries.Order().ToList();
        var recovery = sorted.Count == 0 ? "—" : $"{Seconds(Percentile(sorted, 0.5))} / {Seconds(Percentile(sorted, 0.99))} (n={sorted.Count})";
        return $"| {Trial} | {FaultsInjected} | {RequestsSent} | {RequestsLost} | {recovery} | {Notes} |";
    }

    public void Record(ITestOutputHelper output)
    {
        var row = Row();
        output.WriteLine(row);
        lock (FileLock) File.AppendAllText(FilePath, row + Environment.NewLine);
    }

    private static TimeSpan Percentile(List<TimeSpan> sorted, double p) => sorted[(int)Math.Ceiling(p * sorted.Count) - 1];

    private static string Seconds(TimeSpan t) => t.TotalSeconds.ToString("0.00", CultureInfo.InvariantCulture) + " s";
}
