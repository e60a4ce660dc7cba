using System.Net;
using System.Net.Sockets;

namespace HybridServing.TestKit;

/// <summary>
/// Free loopback ports for hosts that need to know their port before they start (two Kestrel
/// endpoints, child processes). Test assemblies run in parallel processes, and a port found free and
/// released can be taken before its host binds it, so a port handed out here is:
/// <list type="bullet">
/// <item>below the kernel's ephemeral range, so no outgoing connection is given it as a source port;</item>
/// <item>reserved across processes by an exclusive lock on a file named after it, held until this
///   process exits (the kernel drops the lock even when the process crashes);</item>
/// <item>never handed out twice by one process.</item>
/// </list>
/// </summary>
public static class Ports
{
    private const int Lowest = 12_000;
    private static readonly string LockDirectory = Path.Combine(Path.GetTempPath(), "hybridserving-test-ports");
    private static readonly int Highest = EphemeralStart() - 1;
    private static readonly Dictionary<int, FileStream> Held = [];

    public static int GetFree() => GetFreeBlock(1);

    /// <summary>
    /// <paramref name="count"/> consecutive free ports, for components whose ports are numbered
    /// from a base (the AppHost's engines and sidecars).
    /// </summary>
    public static int GetFreeBlock(int count)
    {
        lock (Held)
        {
            Directory.CreateDirectory(LockDirectory);
            for (var attempt = 0; attempt < 500; attempt++)
            {
                var start = Random.Shared.Next(Lowest, Highest - count + 1);
                var locks = new List<FileStream>();
                var ok = true;
                for (var p = start; p < start + count && ok; p++)
                {
                    var held = !Held.ContainsKey(p) ? TryLock(p) : null;
                    if (held is null || !IsFree(p)) { held?.Dispose(); ok = false; }
                    else locks.Add(held);
                }
                if (!ok)
                {
                    foreach (var l in locks) l.Dispose();
                    continue;
                }
                for (var i = 0; i < count; i++) Held[start + i] = locks[i];
                return start;
            }
            throw new InvalidOperationException($"No block of {count} free ports found between {Lowest} and {Highest}.");
        }
    }

    private static FileStream? TryLock(int port)
    {
        try
        {
            // FileShare.None takes an exclusive advisory lock (flock) on Unix; another test process gets an IOException.
            return new FileStream(Path.Combine(LockDirectory, port.ToString(System.Globalization.CultureInfo.InvariantCulture)),
                FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static bool IsFree(int port)
    {
        try
        {
            using var listener = new TcpListener(IPAddress.Loopback, port);
            listener.Start();
            listener.Stop();
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    /// <summary>The first port the kernel hands to outgoing connections (Linux: ip_local_port_range; else IANA's 49152).</summary>
    private static int EphemeralStart()
    {
        try
        {
            var text = File.ReadAllText("/proc/sys/net/ipv4/ip_local_port_range").Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            if (text.Length >= 1 && int.TryParse(text[0], out var first) && first > Lowest + 2_000) return first;
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
        return 49_152;
    }
}
