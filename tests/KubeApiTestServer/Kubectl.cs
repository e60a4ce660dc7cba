using System.Diagnostics;

namespace HybridServing.KubeApiTestServer;

/// <summary>What one kubectl run printed and how it ended.</summary>
public sealed record KubectlResult(int ExitCode, string Output, string Error)
{
    public override string ToString() => $"exit {ExitCode}\n--- stdout\n{Output}\n--- stderr\n{Error}";
}

/// <summary>
/// Runs the real kubectl (from PATH) against a <see cref="KubeApiServer"/>, with a kubeconfig and a
/// discovery cache of its own, so tests see exactly what a user would. kubectl missing is an error
/// (<see cref="InvalidOperationException"/>), never a skipped test.
/// </summary>
public sealed class Kubectl : IDisposable
{
    private readonly string _directory;
    private readonly string _kubeconfig;

    public Kubectl(KubeApiServer server)
    {
        ArgumentNullException.ThrowIfNull(server);
        _directory = Directory.CreateTempSubdirectory("kubectl-").FullName;
        _kubeconfig = Path.Combine(_directory, "kubeconfig");
        server.WriteKubeConfig(_kubeconfig);
    }

    /// <summary>The working directory kubectl runs in (relative paths such as <c>k8s/</c> resolve here); the current directory unless set.</summary>
    public string? WorkingDirectory { get; init; }

    /// <summary>Runs kubectl with <paramref name="args"/>; throws when it exits non-zero, with everything it printed.</summary>
    public async Task<string> RunAsync(params string[] args)
    {
        var result = await TryRunAsync(args);
        return result.ExitCode == 0
            ? result.Output
            : throw new InvalidOperationException($"kubectl {string.Join(' ', args)} failed: {result}");
    }

    /// <summary>Runs kubectl with <paramref name="args"/> and returns how it ended, whatever the exit code.</summary>
    public async Task<KubectlResult> TryRunAsync(params string[] args)
    {
        var start = new ProcessStartInfo("kubectl")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = WorkingDirectory ?? Environment.CurrentDirectory,
        };
        start.ArgumentList.Add("--kubeconfig=" + _kubeconfig);
        start.ArgumentList.Add("--cache-dir=" + Path.Combine(_directory, "cache"));
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        // kubectl diff runs $KUBECTL_EXTERNAL_DIFF or diff; keep it plain.
        start.Environment.Remove("KUBECTL_EXTERNAL_DIFF");
        Process process;
        try
        {
            process = Process.Start(start) ?? throw new InvalidOperationException("kubectl did not start");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException($"kubectl is not on PATH ({e.Message}): these tests need the real kubectl (client 1.32); install it, they do not skip", e);
        }

        using (process)
        {
            process.StandardInput.Close();
            var output = process.StandardOutput.ReadToEndAsync();
            var error = process.StandardError.ReadToEndAsync();
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            try
            {
                await process.WaitForExitAsync(timeout.Token);
            }
            catch (OperationCanceledException)
            {
                process.Kill(entireProcessTree: true);
                throw new TimeoutException($"kubectl {string.Join(' ', args)} did not finish within 60 s; stderr so far: {(error.IsCompleted ? error.Result : "")}");
            }

            return new KubectlResult(process.ExitCode, await output, await error);
        }
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
            // Best effort: a temp directory.
        }
    }
}
