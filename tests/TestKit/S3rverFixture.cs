using System.Diagnostics;
using System.Net.Sockets;
using Xunit;

namespace HybridServing.TestKit;

/// <summary>
/// A real S3-protocol server (s3rver from npm) for S3 tests (xunit class fixture). It installs itself into
/// <c>tests/TestKit/node</c> on first use (one install shared by every test project, guarded by a lock file so
/// parallel test runs do not install over each other); nothing is skipped: without npm the tests fail and say why.
/// Clients need path-style addressing, and <c>UseChunkEncoding = false</c> on PUT.
/// </summary>
public sealed class S3rverFixture : IAsyncLifetime
{
    public const string Version = "3.7.1";
    public const string Bucket = "adapters";
    private Process? _process;
    private TempDirectory? _data;

    public Uri ServiceUrl { get; private set; } = null!;

    /// <summary>The address s3rver listens on: loopback unless a test's peers live elsewhere (pods on a bridge).</summary>
    public string Address { get; init; } = "127.0.0.1";

    /// <summary>
    /// s3rver's <c>--service-endpoint</c>: with <c>example.internal</c>, requests to the host <c>s3.example.internal</c> are
    /// path-style and <c>BUCKET.s3.example.internal</c> virtual-hosted, as with a store reached by DNS name (AWS's by default).
    /// </summary>
    public string? ServiceEndpoint { get; init; }

    private static string ProjectDirectory()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "HybridServing.sln"))) dir = dir.Parent;
        if (dir is null) throw new InvalidOperationException($"HybridServing.sln not found above {AppContext.BaseDirectory}.");
        return Path.Combine(dir.FullName, "tests", "TestKit");
    }

    public async Task InitializeAsync()
    {
        var prefix = Path.Combine(ProjectDirectory(), "node");
        var entry = Path.Combine(prefix, "node_modules", "s3rver", "bin", "s3rver.js");
        if (!File.Exists(entry))
            await InstallAsync(prefix, entry);
        _data = new TempDirectory("s3rver");
        var port = Ports.GetFree();
        string[] endpoint = ServiceEndpoint is null ? [] : ["--service-endpoint", ServiceEndpoint];
        var start = new ProcessStartInfo("node", [entry, "-d", _data.Path, "-a", Address, "-p", port.ToString(), .. endpoint, "--configure-bucket", Bucket, "--silent"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        _process = Process.Start(start) ?? throw new InvalidOperationException("node did not start.");
        _process.OutputDataReceived += (_, _) => { };
        _process.ErrorDataReceived += (_, _) => { };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        ServiceUrl = new Uri($"http://{Address}:{port}");
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (true)
        {
            try
            {
                using var client = new TcpClient();
                await client.ConnectAsync(Address, port);
                return;
            }
            catch (SocketException) when (DateTime.UtcNow < deadline && !_process.HasExited)
            {
                await Task.Delay(100);
            }
            catch (SocketException)
            {
                throw new InvalidOperationException($"s3rver did not listen on {port} (exited: {_process.HasExited}).");
            }
        }
    }

    private static async Task InstallAsync(string prefix, string entry)
    {
        Directory.CreateDirectory(prefix);
        var lockPath = Path.Combine(prefix, ".install.lock");
        var deadline = DateTime.UtcNow.AddMinutes(6);
        while (true)
        {
            FileStream gate;
            try
            {
                gate = new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException) when (DateTime.UtcNow < deadline)
            {
                // Another test process is installing; it will be there when its lock goes.
                await Task.Delay(500);
                continue;
            }
            using (gate)
            {
                if (File.Exists(entry)) return;
                var (code, output) = await RunAsync("npm", ["install", "--prefix", prefix, $"s3rver@{Version}", "--no-audit", "--no-fund", "--loglevel=error"], TimeSpan.FromMinutes(5));
                if (code != 0 || !File.Exists(entry))
                    throw new InvalidOperationException($"Installing s3rver@{Version} with npm failed (exit {code}); the S3 tests need Node.js and npm on PATH. {output}");
                return;
            }
        }
    }

    private static async Task<(int, string)> RunAsync(string file, string[] args, TimeSpan timeout)
    {
        Process process;
        try
        {
            process = Process.Start(new ProcessStartInfo(file, args) { RedirectStandardOutput = true, RedirectStandardError = true })!;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            return (-1, $"'{file}' could not be started: {e.Message}");
        }
        using (process)
        {
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            using var cts = new CancellationTokenSource(timeout);
            try { await process.WaitForExitAsync(cts.Token); }
            catch (OperationCanceledException) { process.Kill(entireProcessTree: true); return (-1, "timed out"); }
            return (process.ExitCode, (await stdout) + (await stderr));
        }
    }

    public Task DisposeAsync()
    {
        if (_process is { HasExited: false }) _process.Kill(entireProcessTree: true);
        _process?.WaitForExit(5000);
        _process?.Dispose();
        _data?.Dispose();
        return Task.CompletedTask;
    }
}
