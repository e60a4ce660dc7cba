namespace HybridServing.Gateway.Tenancy;

/// <summary>
/// <c>hybridserving-gateway hash-key</c>: reads one API key from standard input (not the command line,
/// which shell history and <c>ps</c> would keep) and prints the lowercase hex SHA-256 that a keys file's
/// <c>apiKeySha256</c> holds. Equivalent to <c>printf '%s' "$KEY" | sha256sum</c>.
/// </summary>
internal static class HashKeyCommand
{
    public static int Run(TextReader input, TextWriter output, TextWriter error)
    {
        var key = input.ReadToEnd().TrimEnd('\r', '\n');
        if (key.Length == 0)
        {
            error.WriteLine("hash-key: no key on standard input (usage: printf '%s' \"$KEY\" | hybridserving-gateway hash-key).");
            return 2;
        }
        output.WriteLine(Convert.ToHexStringLower(ApiKeyStore.Hash(key)));
        return 0;
    }
}
