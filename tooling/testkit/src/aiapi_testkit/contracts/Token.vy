# pragma version ~=0.4.3
# A minimal ERC-20 for the payments tests: the canonical "USDT" and its look-alike are both this.

event Transfer:
    sender: indexed(address)
    receiver: indexed(address)
    value: uint256

name: public(String[32])
symbol: public(String[8])
decimals: public(uint8)
totalSupply: public(uint256)
balanceOf: public(HashMap[address, uint256])


@deploy
def __init__(_symbol: String[8], _supply: uint256):
    self.name = "Tether USD"
    self.symbol = _symbol
    self.decimals = 6
    self.totalSupply = _supply
    self.balanceOf[msg.sender] = _supply
    log Transfer(sender=empty(address), receiver=msg.sender, value=_supply)


@internal
def _move(_to: address, _value: uint256):
    self.balanceOf[msg.sender] -= _value
    self.balanceOf[_to] += _value
    log Transfer(sender=msg.sender, receiver=_to, value=_value)


@external
def transfer(_to: address, _value: uint256) -> bool:
    self._move(_to, _value)
    return True


@external
def transferMany(_to: DynArray[address, 8], _values: DynArray[uint256, 8]) -> bool:
    assert len(_to) == len(_values)
    for i: uint256 in range(8):
        if i >= len(_to):
            break
        self._move(_to[i], _values[i])
    return True
