using System.Diagnostics;

namespace HybridServing.Bench.Hosting;

/// <summary>Free loopback ports (bind port 0, read, release).</summary>
internal static class FreePorts
{
    /// <summary>A free loopback port below the ephemeral range (outgoing connections cannot take it meanwhile).</summary>
    public static int Get() => HybridServing.TestKit.Ports.GetFree();

    public static Uri Url(int port) => new($"http://127.0.0.1:{port}/");
}

/// <summary>Progress lines with the time since the harness started (where a slow run spends its time).</summary>
internal static class Progress
{
    private static readonly Stopwatch Clock = Stopwatch.StartNew();

    public static void Log(string message) =>
        Console.WriteLine($"[{Clock.Elapsed:mm\\:ss\\.f}] {message}");
}
