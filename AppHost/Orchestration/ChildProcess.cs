using System.Diagnostics;
using System.Runtime.InteropServices;

namespace HybridServing.AppHost.Orchestration;

/// <summary>
/// A running component: its output is prefixed with its name and streamed to the sink, the last
/// lines are kept to explain a failure, and stopping sends SIGTERM first, then kills the tree.
/// </summary>
internal sealed class ChildProcess : IAsyncDisposable
{
    private const int TailLines = 30;
    private readonly Process _process;
    private readonly Queue<string> _tail = new();
    private readonly Action<string, string> _sink;
    private readonly TaskCompletionSource<int> _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private volatile bool _stopping;

    private ChildProcess(string name, Process process, Action<string, string> sink)
    {
        Name = name;
        _process = process;
        _sink = sink;
    }

    public string Name { get; }
    public int Id => _process.Id;

    /// <summary>Completes with the exit code when the process ends.</summary>
    public Task<int> Exited => _exited.Task;

    /// <summary>True when the process ended without being asked to stop.</summary>
    public bool ExitedUnexpectedly => _exited.Task.IsCompleted && !_stopping;

    public IReadOnlyList<string> RecentOutput
    {
        get { lock (_tail) return [.. _tail]; }
    }

    public static ChildProcess Start(ResourceDefinition resource, string dll, Action<string, string> sink)
    {
        var info = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = Path.GetDirectoryName(dll)!,
        };
        info.ArgumentList.Add(dll);
        foreach (var a in resource.Arguments) info.ArgumentList.Add(a);
        foreach (var (k, v) in resource.Environment) info.Environment[k] = v;

        var process = new Process { StartInfo = info, EnableRaisingEvents = true };
        var child = new ChildProcess(resource.Name, process, sink);
        process.OutputDataReceived += (_, e) => child.OnLine(e.Data);
        process.ErrorDataReceived += (_, e) => child.OnLine(e.Data);
        // Exited can fire before the last output lines were read; WaitForExit() drains them first,
        // so a failure report carries the child's final words.
        process.Exited += (_, _) => Task.Run(() =>
        {
            process.WaitForExit();
            child._exited.TrySetResult(process.ExitCode);
        });
        if (!process.Start()) throw new InvalidOperationException($"Could not start {resource.Name}.");
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return child;
    }

    private void OnLine(string? line)
    {
        if (line is null) return;
        lock (_tail)
        {
            _tail.Enqueue(line);
            if (_tail.Count > TailLines) _tail.Dequeue();
        }
        _sink(Name, line);
    }

    /// <summary>Asks the process to stop (SIGTERM), and kills its whole tree after the grace period.</summary>
    public async Task StopAsync(TimeSpan grace)
    {
        _stopping = true;
        if (_exited.Task.IsCompleted) return;
        try
        {
            if (OperatingSystem.IsWindows()) _process.Kill(entireProcessTree: true);
            else _ = SysKill(_process.Id, SigTerm);
            await _exited.Task.WaitAsync(grace);
        }
        catch (TimeoutException)
        {
            try { _process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            await ((Task)_exited.Task).WaitAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync(TimeSpan.FromSeconds(5));
        _process.Dispose();
    }

    private const int SigTerm = 15;

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int SysKill(int pid, int signal);
}
