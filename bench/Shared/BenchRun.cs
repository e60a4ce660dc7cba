using System.Diagnostics;
using System.Globalization;

namespace HybridServing.Bench.Shared;

/// <summary>
/// What every benchmark program shares (linked into each): results go to the git-ignored
/// <c>bench/results/local/</c> unless <c>--record</c> is given (then to the tracked <c>bench/results/</c>, for figures
/// the README quotes), and the wall time a user waits, the build included.
/// </summary>
internal static class BenchRun
{
    public const string RecordFlag = "--record";

    /// <summary>Removes <c>--record</c> from <paramref name="args"/>; true when it was there.</summary>
    public static bool TakeRecord(ref string[] args)
    {
        var record = args.Contains(RecordFlag, StringComparer.Ordinal);
        if (record) args = [.. args.Where(a => a != RecordFlag)];
        return record;
    }

    /// <summary><c>bench/results</c> (recorded, tracked) or <c>bench/results/local</c> (ignored), under <paramref name="root"/>.</summary>
    public static string ResultsRoot(string root, bool record) =>
        record ? Path.Combine(root, "bench", "results") : Path.Combine(root, "bench", "results", "local");

    /// <summary>
    /// "wall time N s (M s of it building and starting before this program ran)": measured from the start of the
    /// <c>dotnet run</c> that started this process (Linux: its parent in /proc) when there is one, so the build a
    /// user waits for is counted; else from this process's start.
    /// </summary>
    public static string WallTime()
    {
        var now = DateTime.Now;
        var self = Process.GetCurrentProcess().StartTime;
        var run = DotnetRunStart();
        var total = (now - (run ?? self)).TotalSeconds;
        return run is { } r
            ? string.Create(CultureInfo.InvariantCulture, $"wall time {total:0} s from `dotnet run` ({(self - r).TotalSeconds:0} s of it the build and start-up, {(now - self).TotalSeconds:0} s the run)")
            : string.Create(CultureInfo.InvariantCulture, $"wall time {total:0} s (this process only: not started by `dotnet run`, so no build counted)");
    }

    private static DateTime? DotnetRunStart()
    {
        try
        {
            var stat = File.ReadAllText("/proc/self/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            var parent = int.Parse(fields[1], CultureInfo.InvariantCulture);
            var cmdline = File.ReadAllText($"/proc/{parent}/cmdline").Split('\0');
            if (!cmdline.Contains("run", StringComparer.Ordinal)) return null;
            using var p = Process.GetProcessById(parent);
            return p.StartTime;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or ArgumentException or InvalidOperationException or IndexOutOfRangeException)
        {
            return null;
        }
    }
}
